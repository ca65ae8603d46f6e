"""The WSGI bridge of the web processes: a request read whole in aiohttp's event loop, the
WSGI app run on it in a thread of the pool, the answer written back by the loop.

Each request has RELAY_REQUEST_TIMEOUT seconds, from its first byte (from the connection's
start for the first request), to arrive whole: past that it is answered 408 and closed (its
head's deadline is connection.py's). The answer has as long to be taken by the client. A
body is never held past RELAY_MAX_BODY + 1 bytes; the app gives the 413.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from typing import Any
from urllib.parse import unquote_to_bytes

from aiohttp import web
from aiohttp.streams import StreamReader

from relay.config import Settings
from relay.web.connection import Connection
from relay.web.errors import error_body
from relay.web.hooks import Hooks
from relay.web.intake import Intake, hook_name

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
BODY_BUDGET = 64 * 1024 * 1024  # bytes of request bodies one web process holds at once
SMALL_BODY = 64 * 1024  # bodies up to this size have a budget of their own
# Webhooks with bodies up to this size are answered in the loop (hooks.py), larger ones in
# the pool, where the loop keeps its turns: a batch of 350 leads in 16 KB maps in ~10 ms.
LOOP_BODY = 16 * 1024
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


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
        # The relay's app answers webhooks in the loop (hooks.py); any other app, and the
        # relay's other paths, run in the pool.
        intake = getattr(app, "wsgi_app", None)
        self.hooks = Hooks(intake, self.pool) if isinstance(intake, Intake) else None
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
            name = hook_name(environ["PATH_INFO"])
            if self.hooks and name is not None and declared is not None and (
                    declared <= LOOP_BODY):
                status, headers, content = await self.hooks.answer(environ, name)
            else:
                status, headers, content = await asyncio.get_running_loop().run_in_executor(
                    self.pool, self._call, environ)
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
    body = json.dumps(error_body("too many request bodies are arriving at once",
                                 "retry shortly; nothing was read or stored"))
    response = web.Response(status=503, body=body.encode(), content_type="application/json",
                            headers={"Retry-After": "5"})
    response.force_close()
    return response


def _late(timeout: float) -> web.Response:
    body = json.dumps(error_body(f"the request did not arrive whole within {timeout:g} s",
                                 "send the request at once; RELAY_REQUEST_TIMEOUT sets the "
                                 "limit"))
    response = web.Response(status=408, body=body.encode(), content_type="application/json")
    response.force_close()
    return response
