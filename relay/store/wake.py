"""Waking idle workers on new work: PostgreSQL's LISTEN/NOTIFY.

Whatever makes a delivery due now (webhooks accepted, a replay, an operator's send-now, a
stopping worker's release) sends NOTIFY on CHANNEL in its own transaction (SqlStore._wake).
The server delivers it when the transaction commits, and once however often the transaction
sent it. Each worker's `Listener` holds a connection of its own that LISTENs, and wakes the
worker to claim at once rather than at its next poll (RELAY_POLL_INTERVAL). Polling goes on
beside it: it finds what nobody announces (a lease that ran out, a retry come due) and carries
the worker while the listener's connection is lost.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:  # psycopg is an extra ('.[postgres]'), absent where SQLite runs
    import psycopg

log = logging.getLogger("relay.worker")  # a worker's lines, where its operators look
CHANNEL = "relay_work"
NOTIFY = f"NOTIFY {CHANNEL}"
RETRY_FIRST = 0.5  # seconds before connecting again after a drop; doubled per failure
RETRY_MOST = 30.0
PING = 30.0  # seconds without a notification after which the connection is checked
PING_TIMEOUT = 10.0  # seconds that check may take before the connection counts as lost


def conninfo(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://...) as libpq takes it."""
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(
        hide_password=False)


class Listener:
    """A `Waiter` (base.py) over LISTEN on a connection of its own (autocommit), whose socket
    the worker's event loop watches: waiting costs no thread and no CPU.
    It starts at the first `wait`. A lost connection is logged and connected again, after
    RETRY_FIRST seconds and then longer; meanwhile `wait` only times out (the worker polls).
    `backend_pid` is the server process of the current connection (None while there is
    none)."""

    def __init__(self, url: str, *, retry: float = RETRY_FIRST, ping: float = PING):
        self.conninfo = conninfo(url)
        self.retry = retry
        self.ping = ping
        self.backend_pid: int | None = None
        self._announced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def listening(self) -> bool:
        return self.backend_pid is not None

    async def wait(self, timeout: float) -> bool:
        if self._task is None:
            self._task = asyncio.create_task(self._listen())
        try:
            # Not wait_for: on Python 3.11 it can swallow a cancellation that comes as the
            # wait ends, and the worker cancels this wait whenever something else woke it.
            async with asyncio.timeout(timeout):
                await self._announced.wait()
        except TimeoutError:
            return False
        self._announced.clear()
        return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])  # its end, without its CancelledError
            self._task = None

    async def _listen(self) -> None:
        delay, lost = self.retry, False
        while True:
            try:
                await self._session(lost)
            except Exception as exc:  # whatever it was, the worker polls and we try again
                if self.backend_pid is not None:  # it was listening: a drop, not a retry
                    delay, self.backend_pid = self.retry, None
                first = str(exc).strip().splitlines()[:1]
                log.warning("not listening for new work (%s%s); polling meanwhile, connecting "
                            "again in %.1fs", type(exc).__name__,
                            f": {first[0]}" if first else "", delay)
                lost = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MOST)

    async def _session(self, lost: bool) -> None:
        """Connect, LISTEN, and wake the worker on every notification until the connection
        fails (raised)."""
        import psycopg  # here: only a PostgreSQL store has a listener

        async with await psycopg.AsyncConnection.connect(
                self.conninfo, autocommit=True, connect_timeout=10) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            self.backend_pid = conn.info.backend_pid
            if lost:
                log.info("listening for new work again")
            # Whatever was accepted before we listened was announced to nobody: claim once.
            self._announced.set()
            await self._heed(conn)

    async def _heed(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Read notifications as the socket has them. Not psycopg's `notifies()`, which
        wakes ten times a second to look for interruptions: an idle worker's CPU (issue 17)."""
        readable = asyncio.Event()
        socket = conn.pgconn.socket
        loop = asyncio.get_running_loop()
        loop.add_reader(socket, readable.set)
        try:
            while True:
                try:
                    async with asyncio.timeout(self.ping):
                        await readable.wait()
                except TimeoutError:
                    # Quiet for a while: a connection the network dropped silently would
                    # keep us waiting for ever, a query finds out. What it reads on the way
                    # psycopg keeps for itself: wake the worker in case.
                    async with asyncio.timeout(PING_TIMEOUT):
                        await conn.execute("SELECT 1")
                    self._announced.set()
                    continue
                readable.clear()
                conn.pgconn.consume_input()  # raises once the connection is lost
                while conn.pgconn.notifies() is not None:
                    self._announced.set()
        finally:
            loop.remove_reader(socket)
