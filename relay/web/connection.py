"""aiohttp's HTTP/1.1 connection, with a deadline on each request's head.

aiohttp has no public hook for it, so `Connection` reads and sets state of aiohttp's
RequestHandler (the names in `_STATE`): the import fails, not the first slow client, if an
aiohttp release renames them. Tested with aiohttp 3.14.5; pyproject.toml's floor (3.9) is
what the worker's Engati client needs, not a claim that this file works on it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

# The request handler's state the head deadline reads and sets.
_STATE = ("_messages", "_request_in_progress", "_keepalive_handle", "_waiter")
if not set(_STATE) <= set(RequestHandler.__slots__):
    raise ImportError(f"aiohttp {sys.modules['aiohttp'].__version__}'s RequestHandler lacks "
                      f"{sorted(set(_STATE) - set(RequestHandler.__slots__))}")

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]  # bridge.py's Bridge


class Connection(RequestHandler):
    """aiohttp's HTTP/1.1 connection, with a deadline on each request's head: `head_timeout`
    seconds from its first byte (from the connection's start for the first request), past
    which a head still incomplete is closed unanswered. The body's deadline counts from the
    same `head_started` (bridge.py)."""

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

    # asyncio's contract: True keeps the transport open for the answer (aiohttp's
    # annotation says None, as its own never does).
    def eof_received(self) -> bool:  # type: ignore[override]
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


class Server(web.Server):
    """aiohttp's server, making `Connection`s."""

    def __init__(self, handler: Handler, *, head_timeout: float, **kwargs: Any):
        super().__init__(handler, **kwargs)
        self._head_timeout = head_timeout

    def __call__(self) -> Connection:
        return Connection(self, loop=self._loop, head_timeout=self._head_timeout, **self._kwargs)
