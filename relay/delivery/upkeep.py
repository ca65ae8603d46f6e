"""What a worker does for the database besides deliveries: SQLite's checkpoints, and the
purge of what is kept no longer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

from relay.config import Settings, parse_duration
from relay.delivery.store_thread import StoreThread
from relay.errors import StoreUnavailable

REFUSALS_KEPT = 7 * 86400  # seconds refusal counts are kept (the failures inbox shows them)
CHECKPOINT_EVERY = 1.0  # seconds
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
        self._checkpointed_at = float("-inf")

    async def checkpoint(self) -> None:
        """Once a second, SQLite's log goes into the database file here, not in a request."""
        if self.clock() - self._checkpointed_at < CHECKPOINT_EVERY:
            return
        self._checkpointed_at = self.clock()
        try:
            await self.db.call(self.db.store.checkpoint)
        except StoreUnavailable as exc:
            log.warning("checkpoint failed: %s", exc)

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
            except StoreUnavailable as exc:
                log.warning("retention purge failed: %s", exc)
            delay = self.retention_every
