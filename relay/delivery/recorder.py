"""Outcomes go to the store in batches: whatever piled up while the last batch was written
goes in the next, in one transaction. With hundreds of calls in flight, one commit per call
would queue them all behind the database lock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from relay.delivery.store_thread import StoreThread
from relay.errors import StoreUnavailable
from relay.model import Attempt, Claimed

BATCH = 500  # outcomes written in one transaction at most
log = logging.getLogger("relay.worker")  # the worker's lines, under the name they always had
Pending = tuple[Claimed, Attempt, "asyncio.Future[bool]"]  # an outcome and who awaits it


class Recorder:
    """Writes outcomes for `worker` through the store's thread. One task per event loop
    does the writing: it starts with the first outcome on a loop, and `close` ends it."""

    def __init__(self, db: StoreThread, worker: str, *, clock: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.db = db
        self.worker = worker
        self.clock = clock
        self.sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[Pending] = asyncio.Queue()

    async def record(self, claimed: Claimed, attempt: Attempt) -> bool:
        """Record `attempt` once it is written: False when the lease had been lost meanwhile.
        Raises StoreUnavailable when the database stayed unavailable until the lease ran out."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._loop is not loop:
            self._queue = asyncio.Queue()
            self._loop = loop
            self._task = asyncio.create_task(self._run(self._queue))
        done: asyncio.Future[bool] = loop.create_future()
        self._queue.put_nowait((claimed, attempt, done))
        return await done

    async def close(self) -> None:
        """End the writing task; idle by then, as every outcome was awaited by its call."""
        if self._task is not None and self._loop is asyncio.get_running_loop():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _run(self, queue: asyncio.Queue[Pending]) -> None:
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < BATCH:
                batch.append(queue.get_nowait())
            try:
                await self._write(batch)
            except Exception as exc:  # a bug here must not stop every later recording
                log.exception("recording %d outcome(s) failed", len(batch))
                for *_, done in batch:
                    if not done.done():
                        done.set_exception(exc)

    async def _write(self, batch: list[Pending]) -> None:
        """Write a batch; while the database is unavailable, try again for as long as the
        leases last: an outcome recorded late beats a call made twice."""
        delay = 0.05
        while batch:
            try:
                kept = await self.db.call(self.db.store.record_many,
                                          [attempt for _, attempt, _ in batch], self.worker,
                                          self.clock())
            except StoreUnavailable as exc:
                give_up = self.clock() + delay
                for claimed, _, done in batch:
                    if claimed.lease_until <= give_up:
                        done.set_exception(exc)
                batch = [item for item in batch if not item[2].done()]
                await self.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            for (*_, done), result in zip(batch, kept, strict=True):
                done.set_result(result)
            return
