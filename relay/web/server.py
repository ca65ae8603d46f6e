"""The gunicorn worker class of the web processes: aiohttp's server in front of the WSGI app.

gthread hands a connection to a thread as soon as it is readable and the thread then reads
the request with no deadline: twenty clients sending a byte every two seconds hold every
thread, and nothing else is answered. Here the event loop reads each request whole, headers
(aiohttp's C parser) and body, while an idle or slow connection costs a file descriptor and a
few kilobytes, never a thread; only a request that has fully arrived goes to the thread pool
(gunicorn's --threads), and the pool's threads are back to work as soon as the app has
returned its answer, which the loop writes out.

Each request has RELAY_REQUEST_TIMEOUT seconds, from its first byte (from the connection's
start for the first request), to arrive whole: past that the connection is closed (headers
incomplete) or answered 408 and closed (body incomplete). The answer has as long to be taken
by the client. A body is never held past RELAY_MAX_BODY + 1 bytes; the app gives the 413.

`gunicorn --worker-class relay.web_server.Worker --threads 8 'relay.app:create_app()'`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from io import BytesIO
from typing import Any
from urllib.parse import unquote_to_bytes

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.worker import GunicornWebWorker

from relay.config import Settings

# The request handler's state the head deadline reads (aiohttp has no public hook for it):
# fail at import, not at the first slow client, if a new aiohttp renames it.
_STATE = ("_messages", "_request_in_progress", "_keepalive_handle", "_waiter")
if not set(_STATE) <= set(RequestHandler.__slots__):
    raise ImportError(f"aiohttp {sys.modules['aiohttp'].__version__}'s RequestHandler lacks "
                      f"{sorted(set(_STATE) - set(RequestHandler.__slots__))}")

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
BODY_BUDGET = 64 * 1024 * 1024  # bytes of request bodies one web process holds at once
SMALL_BODY = 64 * 1024  # bodies up to this size have a budget of their own
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Connection(RequestHandler):
    """aiohttp's HTTP/1.1 connection, with a deadline on each request's head."""

    __slots__ = ("_head_timeout", "_head_timer", "_latest", "head_started")

    def __init__(self, manager: web.Server, *, head_timeout: float, **kwargs: Any):
        super().__init__(manager, **kwargs)
        self._head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._latest: StreamReader | None = None  # the body of the last request parsed
        self.head_started = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._start_head()  # a client that connects and sends nothing has as long

    def data_received(self, data: bytes) -> None:
        if not self._messages and not self._request_in_progress:
            # Bytes of a request's head: it has the request timeout from here, not the
            # keep-alive allowance (aiohttp's timer would cut a slow head at --keepalive).
            if self._keepalive_handle is not None:
                self._keepalive_handle.cancel()
                self._keepalive_handle = None
            if self._head_timer is None:
                self._start_head()
        super().data_received(data)
        if self._messages:
            self.head_complete()
            self._latest = self._messages[-1][1]

    def eof_received(self) -> bool:
        """A client may half-close once its request is sent (RFC 9112, 9.6), as gthread
        allowed: it still gets its answer, then the connection closes. aiohttp would close
        at once. Idle, or with a request cut short, there is nothing to answer."""
        waiting = self._waiter is not None and not self._waiter.done() and not self._messages
        if waiting or self._latest is None or not self._latest.is_eof():
            return False
        self.close()
        return True

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        # A request the parser refused (garbage, a header flood): the internet's noise, one
        # line in the log rather than aiohttp's traceback at ERROR, and nothing echoed back.
        # The parser's words only up to the first colon: after it come the request's own
        # bytes, whose query may carry a token.
        why = (getattr(exc, "message", None) or message or str(exc)).strip().splitlines()
        reason = (why or ["?"])[0].split(":", 1)[0][:100]
        self.logger.info("bad request from %s: %s (%s)", request.remote, reason,
                         type(exc).__name__ if exc else "-")
        response = web.Response(status=status, text=HTTPStatus(status).phrase,
                                headers={"Server": "relay"})
        response.force_close()
        return response

    def connection_lost(self, exc: BaseException | None) -> None:
        self.head_complete()
        super().connection_lost(exc)

    def head_complete(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _start_head(self) -> None:
        self.head_started = self._loop.time()
        self._head_timer = self._loop.call_at(self.head_started + self._head_timeout,
                                              self._head_late)

    def _head_late(self) -> None:
        self._head_timer = None
        if self._waiter is not None and not self._waiter.done() and not self._messages:
            self.force_close()  # still waiting for the head: nothing to answer, just let go


class _Server(web.Server):
    def __init__(self, handler: Bridge, *, head_timeout: float, **kwargs: Any):
        super().__init__(handler, **kwargs)
        self._head_timeout = head_timeout

    def __call__(self) -> Connection:
        return Connection(self, loop=self._loop, head_timeout=self._head_timeout, **self._kwargs)


class Bridge:
    """Reads a request in the loop, runs the WSGI app on it in a thread, writes the answer."""

    def __init__(self, app: WsgiApp, settings: Settings, cfg: Any):
        self.app = app
        self.limit = settings.max_body
        self.timeout = settings.request_timeout
        # Bodies are held whole until the app has run: without a budget, connections that
        # each declare a large body and trickle it would hold memory in proportion to the
        # attacker's bandwidth. A request that would overdraw it is answered 503 unread.
        # Small bodies (webhooks are a few KB) have a budget of their own, so that a flood
        # of large ones does not turn them away.
        self.budget = max(BODY_BUDGET, 8 * (self.limit + 1))
        self.held = {True: 0, False: 0}  # bytes reserved, by small or not (the loop's alone)
        self.pool = ThreadPoolExecutor(max(1, cfg.threads), thread_name_prefix="wsgi")
        self.scheme = "https" if cfg.is_ssl else "http"
        # As gunicorn: the scheme headers count only from the proxies it trusts.
        self.forwarders = set(cfg.forwarded_allow_ips)
        self.scheme_headers = {k.upper(): v for k, v in cfg.secure_scheme_headers.items()}
        self.script_name = os.environ.get("SCRIPT_NAME", "")
        self.base = {
            "wsgi.version": (1, 0), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
            "wsgi.multiprocess": cfg.workers > 1, "wsgi.run_once": False,
            "wsgi.input_terminated": True, "SCRIPT_NAME": self.script_name,
            "SERVER_SOFTWARE": "relay.web_server (aiohttp)",
        }

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        connection: Connection = request.protocol  # type: ignore[assignment]
        connection.head_complete()
        environ = self.environ(request)
        declared = request.content_length
        body = b""
        reserved = 0
        small = declared is not None and declared <= SMALL_BODY
        if declared is None or declared <= self.limit:  # else the app answers 413, unread
            reserved = self.limit + 1 if declared is None else declared
            if self.held[small] + reserved > self.budget:
                return await self._send(request, _busy(), close=True)
            self.held[small] += reserved
        try:
            if reserved:
                payload = request.content
                if (environ.get("HTTP_EXPECT", "").lower() == "100-continue"
                        and request.version >= (1, 1) and not payload.is_eof()):
                    await request.writer.write(_CONTINUE)
                try:
                    body = await self._read(payload, connection.head_started + self.timeout)
                except TimeoutError:
                    return await self._send(request, _late(self.timeout), close=True)
                except Exception:  # the client went away mid-body: no one to answer
                    connection.force_close()
                    return web.Response(status=400)
            environ["wsgi.input"] = BytesIO(body)
            loop = asyncio.get_running_loop()
            status, headers, content = await loop.run_in_executor(self.pool, self._call,
                                                                  environ)
        finally:
            self.held[small] -= reserved
        response = web.Response(status=int(status[:3]), reason=status[4:].strip() or None,
                                headers=headers, body=content)
        if request.method != "HEAD":  # the length of what is sent, whatever the app said
            response.headers.popall("Content-Length", None)
        response.headers.setdefault("Server", "relay")  # not aiohttp's name and version
        return await self._send(request, response)

    def environ(self, request: web.BaseRequest) -> dict[str, Any]:
        environ = self.base.copy()
        target = request.raw_path.partition("#")[0]
        if target.startswith("/"):
            path, _, query = target.partition("?")
        else:  # absolute form, as proxies may send it
            path, query = request.rel_url.raw_path, request.rel_url.raw_query_string
        # WSGI's PATH_INFO: the percent-decoded bytes as latin-1 (aiohttp's parser decoded
        # the raw target as UTF-8 with surrogateescape, which encoding undoes).
        path = unquote_to_bytes(path.encode("utf-8", "surrogateescape")).decode("latin-1")
        if self.script_name and path.startswith(self.script_name):
            path = path[len(self.script_name):]
        version = request.version
        environ["REQUEST_METHOD"] = request.method
        environ["PATH_INFO"] = path
        environ["QUERY_STRING"] = query
        environ["RAW_URI"] = target
        environ["SERVER_PROTOCOL"] = f"HTTP/{version[0]}.{version[1]}"
        connection: Connection = request.protocol  # type: ignore[assignment]
        peer, server = connection.peername, connection.sockname
        if isinstance(peer, tuple):
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = peer[0], str(peer[1])
        else:
            environ["REMOTE_ADDR"] = peer or ""
        if isinstance(server, tuple):
            environ["SERVER_NAME"], environ["SERVER_PORT"] = server[0], str(server[1])
        else:
            environ["SERVER_NAME"], environ["SERVER_PORT"] = server or "", ""
        trusted = ("*" in self.forwarders or not isinstance(peer, tuple)
                   or peer[0] in self.forwarders)
        schemes: set[str] = set()
        for raw_name, raw_value in request.raw_headers:
            name, value = raw_name.decode("latin-1").upper(), raw_value.decode("latin-1")
            if name == "CONTENT-TYPE":
                environ["CONTENT_TYPE"] = value
            elif name == "CONTENT-LENGTH":
                environ["CONTENT_LENGTH"] = value
            elif "_" not in name:  # X_Forwarded_For must not pass as X-Forwarded-For
                if trusted and name in self.scheme_headers:
                    schemes.add("https" if value == self.scheme_headers[name] else "http")
                key = "HTTP_" + name.replace("-", "_")
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        if len(schemes) > 1:
            raise web.HTTPBadRequest(text="contradictory scheme headers")
        environ["wsgi.url_scheme"] = schemes.pop() if schemes else self.scheme
        return environ

    async def _read(self, payload: StreamReader, deadline: float) -> bytes:
        """The body, or its first `limit + 1` bytes (enough for the app to say 413)."""
        wanted = self.limit + 1
        if payload.is_eof():  # it came with the head, as small bodies do: no timer
            return payload.read_nowait(wanted)
        parts, size = [], 0
        async with asyncio.timeout_at(deadline):
            while size < wanted and (chunk := await payload.read(wanted - size)):
                parts.append(chunk)
                size += len(chunk)
        return b"".join(parts)

    def _call(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        """In a pool thread: the app's status, headers and whole body."""
        answer: list[Any] = []
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            answer[:] = (status, headers)  # nothing is sent before the app returns
            return chunks.append

        result = self.app(environ, start_response)
        try:
            chunks.extend(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return answer[0], answer[1], b"".join(chunks)

    async def _send(self, request: web.BaseRequest, response: web.Response,
                    close: bool = False) -> web.Response:
        """Write the answer; a client that does not take it within the timeout is cut off
        (closing would wait for the unsent bytes for ever)."""
        try:
            async with asyncio.timeout(self.timeout):
                await response.prepare(request)
                await response.write_eof()
        except TimeoutError:
            if request.transport is not None:
                request.transport.abort()
        except ConnectionError:
            pass  # the client is gone; aiohttp lets it go quietly
        if close:
            request.protocol.force_close()
        return response

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def _busy() -> web.Response:
    body = json.dumps({"error": "too many request bodies are arriving at once",
                       "hint": "retry shortly; nothing was read or stored"})
    response = web.Response(status=503, body=body.encode(), content_type="application/json",
                            headers={"Retry-After": "5"})
    response.force_close()
    return response


def _late(timeout: float) -> web.Response:
    body = json.dumps({"error": f"the request did not arrive whole within {timeout:g} s",
                       "hint": "send the request at once; RELAY_REQUEST_TIMEOUT sets the limit"})
    response = web.Response(status=408, body=body.encode(), content_type="application/json")
    response.force_close()
    return response


class Worker(GunicornWebWorker):
    """gunicorn's worker around the loop: heartbeat, max_requests, signals, graceful stop."""

    def init_process(self) -> None:
        # Every held connection is a file descriptor: allow as many as the hard limit lets,
        # so that a thousand slow clients do not stop the accept()s.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = max(soft, 65536) if hard == resource.RLIM_INFINITY else hard
        if soft < wanted:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        super().init_process()

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        self._notify_waiter_done()  # start the graceful stop now, not at the next beat

    async def _run(self) -> None:
        settings = Settings.from_env()
        bridge = Bridge(self.wsgi, settings, self.cfg)
        cfg = self.cfg
        server = _Server(
            bridge, head_timeout=settings.request_timeout, logger=self.log,
            keepalive_timeout=cfg.keepalive,
            access_log=self.log.access_log if cfg.accesslog else None,
            access_log_format=self._get_valid_log_format(cfg.access_log_format),
            # gunicorn's limits, 0 meaning its largest
            max_line_size=cfg.limit_request_line or 8190,
            max_field_size=cfg.limit_request_field_size or 8190,
            max_headers=cfg.limit_request_fields or 32768,
            auto_decompress=False)  # the app gets the body as sent, as under gthread
        runner = web.ServerRunner(server, shutdown_timeout=cfg.graceful_timeout * 0.95)
        await runner.setup()
        try:
            ssl_context = self._create_ssl_context(cfg) if cfg.is_ssl else None
            for sock in self.sockets:
                await web.SockSite(runner, sock, ssl_context=ssl_context).start()
            self.booted = True
            while self.alive:
                self.notify()
                if server.requests_count > self.max_requests:
                    self.log.info("Max requests, shutting down: %s", self)
                    break
                if self.ppid != os.getppid():
                    self.log.info("Parent changed, shutting down: %s", self)
                    break
                await self._wait_next_notify()
            self.alive = False
        finally:
            await runner.cleanup()  # stops listening, lets requests in flight finish
            bridge.close()
