"""What a worker does for the database besides deliveries: search's index and SQLite's
checkpoints every second, and the purge of what is kept no longer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

from relay.config import Settings, parse_duration
from relay.delivery.store_thread import StoreThread
from relay.errors import StoreUnavailable

REFUSALS_KEPT = 7 * 86400  # seconds refusal counts are kept (the failures inbox shows them)
EVERY_SECOND = 1.0  # seconds between search indexing and checkpoints
INDEX_SLICE = 0.003  # seconds a transaction of search indexing aims to take
INDEX_MOST = 500  # events indexed for search a transaction at most
log = logging.getLogger("relay.worker")  # the worker's lines, under the name they always had


class Upkeep:
    def __init__(self, db: StoreThread, settings: Settings, *, clock: Callable[[], float],
                 rng: Callable[[], float] = random.random):
        self.db = db
        self.retention = settings.retention
        self.keep = (parse_duration(settings.retention, "RELAY_RETENTION")
                     if settings.retention else None)
        self.clock = clock
        self.rng = rng
        self.retention_every = 3600.0  # seconds between purges
        self._index_batch = 20  # events a transaction of search indexing, as last measured

    async def every_second(self, stop: asyncio.Event) -> None:
        """Until `stop`, once a second: index for search what was stored since, then copy
        SQLite's log into the database file, here rather than in a request."""
        store = self.db.store
        while not stop.is_set():
            try:
                await self.index()
                await self.db.call(store.checkpoint)
            except StoreUnavailable as exc:
                log.warning("search index or checkpoint failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=EVERY_SECOND)

    async def index(self) -> None:
        """Index for search every event stored since the last time. On SQLite, in
        transactions sized to hold the write lock for about INDEX_SLICE seconds each:
        webhooks wait for it meanwhile (300 bodies of 2 KB in one took 30-70 ms, and the
        acks' p99 tripled). Where the store indexes on a connection of its own (PostgreSQL),
        on a thread of its own too, so that claims and outcomes go on meanwhile, and
        INDEX_MOST at a time: nothing waits for that transaction, and each one costs a few
        statements besides its events. (SQLite's indexing holds the one write lock whichever
        thread runs it, and stays on the store's thread, which costs the worker less.)"""
        def timed(limit: int) -> tuple[int, float]:
            started = time.perf_counter()
            done = self.db.store.index_search(limit)
            return done, time.perf_counter() - started

        aside = self.db.store.indexes_aside
        run = asyncio.to_thread if aside else self.db.call
        while True:
            limit = INDEX_MOST if aside else self._index_batch
            done, took = await run(timed, limit)
            if not aside and done and took > 0:
                self._index_batch = max(1, min(INDEX_MOST, int(done * INDEX_SLICE / took)))
            if done < limit:
                return

    async def retain(self, stop: asyncio.Event) -> None:
        """Until `stop`, once every `retention_every`: purge finished events (failed ones too)
        older than RELAY_RETENTION when it is set, and refusal counts older than
        REFUSALS_KEPT in any case, so that forged traffic never grows the database for good.
        A purge may take a while: it runs on a thread of its own, not the store's."""
        store = self.db.store
        # The first purge a little after start, jittered so that workers do not collide.
        delay = self.retention_every / 60 * (1 + self.rng())
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            if stop.is_set():
                return
            try:
                if self.keep is not None:
                    removed = await asyncio.to_thread(store.purge, self.clock() - self.keep,
                                                      include_failed=True)
                    log.info("retention: purged %d event(s) older than %s", removed,
                             self.retention)
                await asyncio.to_thread(store.prune_refusals, self.clock() - REFUSALS_KEPT)
                await asyncio.to_thread(store.prune_cancels, self.clock())
            except StoreUnavailable as exc:
                log.warning("retention purge failed: %s", exc)
            delay = self.retention_every
