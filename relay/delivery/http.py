"""The worker's HTTP/1.1 client: one request at a time per connection, connections kept
alive per origin, answers read by httptools (llhttp, the parser of Node.js).

It replaced aiohttp's ClientSession, whose machinery for what these calls never use (tracing,
cookies, redirects, proxies, a payload registry, timers per call) cost 115-133 us of CPU a
call against 43-48 us here, against the same stand-in (benchmarks/README.md): the worker's
ceiling is its CPU. Left out on purpose: redirects (a 3xx is an answer, judged as
one), proxies (the session read none from the environment either), compression (none is
asked for), and sending a request again on a fresh connection when a kept-alive one turns out
closed (a POST is not repeated unasked: the delivery's retry policy decides, as before).
Like any HTTP/1.1 client, it cannot tell an answer a server sends late and unasked, after the
one asked for, from the next request's answer; bytes past an answer in the same read spoil
the connection.
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

KEEP_IDLE = 15.0  # seconds an idle connection is kept at most, as aiohttp did
_KEEP_ALIVE_TIMEOUT = re.compile(r"(?:^|[,;\s])timeout\s*=\s*(\d{1,9})", re.IGNORECASE)
MAX_HEAD = 64 * 1024  # bytes read before an answer's headers are whole (interim ones too)
MAX_BODY = 1024 * 1024  # bytes of an answer's body kept; the rest is read and dropped
_UNSENDABLE = re.compile(r"[\x00\r\n]")
_TARGET_UNSENDABLE = re.compile(r"[\x00-\x20\x7f]")

Origin = tuple[str, str, int]  # scheme, host, port


class WireError(Exception):
    """The call failed on the wire: no connection, a broken one, or an answer not HTTP."""


@dataclass(frozen=True)
class Reply:
    """What came back over the wire, before it is judged."""

    status: int
    headers: Mapping[str, str]  # case-insensitive: Retry-After
    body: bytes


class Client:
    """Use as `async with Client(...) as client:` on the loop that sends. `limit` bounds
    the calls in flight, and so the connections in use; `timeout` (seconds) each call, from
    waiting for a slot to the answer's last byte."""

    def __init__(self, *, limit: int, timeout: float, connect_timeout: float,
                 ssl_context: ssl.SSLContext | None = None,
                 monotonic: Callable[[], float] = time.monotonic):
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.monotonic = monotonic
        self._ssl = ssl_context
        self._slots = asyncio.Semaphore(limit)
        self._idle: dict[Origin, deque[_Connection]] = {}

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the idle connections (those in use close as their calls end)."""
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()

    async def request(self, method: str, url: str, headers: Mapping[str, str],
                      body: bytes) -> Reply:
        """Send one request and read its answer. Raises TimeoutError past the timeout,
        WireError when the call failed on the wire, ValueError for a request that cannot be
        sent (a URL that is not http(s), a header holding a line break)."""
        origin, host, target = _parse(url)
        message = _message(method, target, host, headers, body)
        try:
            async with asyncio.timeout(self.timeout), self._slots:
                connection = self._take(origin) or await self._connect(origin)
                try:
                    reply, keep = await connection.exchange(message)
                except BaseException:
                    connection.close()
                    raise
        except TimeoutError:
            raise
        except OSError as exc:  # refused, reset, unresolvable, a certificate refused
            raise WireError(type(exc).__name__) from exc
        if keep and not connection.lost:
            self._give_back(origin, connection)
        else:
            connection.close()
        return reply

    def _take(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = self.monotonic()
        while idle:
            connection = idle.pop()  # the last one used: the likeliest to be still open
            if not connection.stale(now):
                return connection
            connection.close()
        return None

    def _give_back(self, origin: Origin, connection: _Connection) -> None:
        now = self.monotonic()
        connection.idle_since = now
        idle = self._idle.setdefault(origin, deque())
        while idle and idle[0].stale(now):
            idle.popleft().close()
        idle.append(connection)

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        secure = scheme == "https"
        if secure and self._ssl is None:
            self._ssl = ssl.create_default_context()  # the system's CAs; loaded once
        loop = asyncio.get_running_loop()
        # Not wait_for: on Python 3.11 it can swallow the call's own timeout (or a stop's
        # cancellation) that comes as the connection is made, and the call waits for ever.
        async with asyncio.timeout(self.connect_timeout):
            _, connection = await loop.create_connection(
                _Connection, host, port, ssl=self._ssl if secure else None,
                server_hostname=host if secure else None)
        return connection


class _Connection(asyncio.Protocol):
    """One connection and the answer it is reading; httptools calls the on_* methods."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost = False  # closed, by either side, or not fit to be used again
        self.idle_since = 0.0
        self.keep_for = KEEP_IDLE  # seconds it may wait idle: less if the server says so
        self._head_read = 0  # bytes read of this answer before its headers were whole
        self._answer: asyncio.Future[tuple[Reply, bool]] | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._headers: CIMultiDict[str] = CIMultiDict()
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_size = 0

    async def exchange(self, message: bytes) -> tuple[Reply, bool]:
        """Send `message`; the answer, and whether the connection may be used again."""
        if self.lost or self.transport is None:  # it spoke first (not HTTP), or it closed
            raise WireError("the connection closed before the request was sent")
        self._answer = asyncio.get_running_loop().create_future()
        self._reset()
        self._head_read = 0
        self.transport.write(message)
        try:
            return await self._answer
        finally:
            self._answer = None

    def stale(self, now: float) -> bool:
        """Closed, or idle long enough that the server may be closing it as it is used."""
        return self.lost or now - self.idle_since >= self.keep_for

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    # asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():  # nothing was asked: not HTTP
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            cause = exc.__context__ if isinstance(exc, httptools.HttpParserCallbackError) else exc
            self._fail(WireError(f"the answer could not be read: {cause}"))
            return
        # Counted here too, not only per header: the parser holds a line until it ends, and
        # an endless one would grow (and be copied) until the timeout.
        if self._status < 200:
            self._head_read += len(data)
            if self._head_read > MAX_HEAD:
                self._fail(WireError(f"the answer could not be read: its head exceeds "
                                     f"{MAX_HEAD} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        answer = self._answer
        if answer is None or answer.done():
            return
        if self._status >= 200 and not self._framed():  # its end is the connection's
            self.on_message_complete()
        else:
            answer.set_exception(WireError("the connection closed before the answer was whole"
                                           if self._status else "closed without an answer"))

    def _fail(self, error: WireError) -> None:
        self.close()
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)

    def _framed(self) -> bool:
        return ("Content-Length" in self._headers
                or "chunked" in self._headers.get("Transfer-Encoding", "").lower())

    # httptools' side

    def on_message_begin(self) -> None:
        if self._answer is None or self._answer.done():  # an answer to nothing asked
            raise ValueError("an answer came that was not asked for")
        self._reset()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)  # a whole head that came in one read
        if self._header_bytes > MAX_HEAD:
            raise ValueError(f"its head exceeds {MAX_HEAD} bytes")
        self._headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        if self._status == 101:
            raise ValueError("it switches protocols")

    def on_body(self, body: bytes) -> None:
        room = MAX_BODY - self._body_size
        if room > 0:
            self._body.append(body[:room])
        self._body_size += len(body)

    def on_message_complete(self) -> None:
        if self._status < 200:  # an interim answer (103 Early Hints): the real one follows
            return
        keep = not self.lost and self._parser.should_keep_alive()
        # `Keep-Alive: timeout=5` (Node.js's servers, Apache's): it closes idle connections
        # after 5 s. Reused at 4.99 s, ours would meet the close with a request on the way.
        if timeout := _KEEP_ALIVE_TIMEOUT.search(self._headers.get("Keep-Alive", "")):
            self.keep_for = min(KEEP_IDLE, int(timeout.group(1)) - 1.0)
        assert self._answer is not None
        self._answer.set_result((Reply(self._status, CIMultiDictProxy(self._headers),
                                       b"".join(self._body)), keep))


@functools.lru_cache(maxsize=256)
def _parse(url: str) -> tuple[Origin, str, str]:
    """The origin to connect to, the Host header and the request target of `url`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Not the URL itself: its path holds the bot's key.
        raise ValueError(f"the URL is not http(s) (its scheme: {parts.scheme or 'none'!r})")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if _TARGET_UNSENDABLE.search(target):
        raise ValueError("the URL's path holds a space or a control character")
    return (parts.scheme, parts.hostname, port), parts.netloc.rpartition("@")[2], target


def _message(method: str, target: str, host: str, headers: Mapping[str, str],
             body: bytes) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if _UNSENDABLE.search(name) or _UNSENDABLE.search(value):
            raise ValueError(f"the {name} header holds a line break or NUL")
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}\r\n\r\n")
    try:
        return "\r\n".join(lines).encode("latin-1") + body
    except UnicodeEncodeError:
        raise ValueError("a header holds characters HTTP cannot carry (not Latin-1)") from None
