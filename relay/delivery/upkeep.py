"""What a worker does for the database besides deliveries: search's index and SQLite's
checkpoints every second, and the purge of what is kept no longer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from relay.config import Settings, parse_duration
from relay.delivery.store_thread import StoreThread
from relay.errors import StoreUnavailable

REFUSALS_KEPT = 7 * 86400  # seconds refusal counts are kept (the failures inbox shows them)
EVERY_SECOND = 1.0  # seconds between search indexing and checkpoints
INDEX_SLICE = 0.003  # seconds a transaction of search indexing aims to take
INDEX_MOST = 500  # events indexed for search a transaction at most
# Pages a transaction of the index's merging writes at most: its time follows its pages
# only loosely (76 pages took 0.8 ms, 84 took 7), and steps sized up to 290 pages held the
# write lock for 9-14 ms. FTS5 stops a step only between terms, so on a large index a
# trigram found in most bodies makes a longer step whatever the budget (12 ms seen, merging
# 16 segments of 400,000 events), as automerge's steps did.
MERGE_MOST = 50
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
        self._merge_pages = 20  # pages a transaction of the index's merging, likewise

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
        acks' p99 tripled); then the index's merges, in transactions sized alike (migration
        0016). Where the store indexes on a connection of its own (PostgreSQL), on a thread
        of its own too, so that claims and outcomes go on meanwhile, and INDEX_MOST at a
        time: nothing waits for that transaction, and each one costs a few statements
        besides its events. (SQLite's indexing holds the one write lock whichever thread
        runs it, and stays on the store's thread, which costs the worker less.)"""
        store = self.db.store
        if store.indexes_aside:
            while await asyncio.to_thread(store.index_search, INDEX_MOST) == INDEX_MOST:
                pass
            return
        indexed = 0
        while True:
            limit = self._index_batch
            done, took = await self.db.call(_timed, store.index_search, limit)
            if done:
                self._index_batch = _sized(done, took)
            indexed += done
            if done < limit:
                break
        while indexed:  # only new segments make merges due: an idle pass writes nothing
            pages = self._merge_pages
            more, took = await self.db.call(_timed, store.merge_search, pages)
            if not more:
                return
            self._merge_pages = min(MERGE_MOST, _sized(pages, took))

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


def _timed(step: Callable[[int], Any], size: int) -> tuple[Any, float]:
    """What `step(size)` returned, and the seconds it took."""
    started = time.perf_counter()
    return step(size), time.perf_counter() - started


def _sized(size: int, took: float) -> int:
    """The size of the next transaction like one of `size` that took `took` seconds: as
    much as fits in INDEX_SLICE, within 1 and INDEX_MOST."""
    return max(1, min(INDEX_MOST, int(size * INDEX_SLICE / took))) if took > 0 else size
