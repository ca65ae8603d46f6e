"""The worker's upkeep: search indexing runs where it holds up the fewest deliveries."""

from __future__ import annotations

import asyncio
import threading

import pytest

from relay.config import Settings
from relay.delivery.store_thread import StoreThread
from relay.delivery.upkeep import Upkeep
from tests.support.fake_store import FakeStore


class IndexingStore(FakeStore):
    def __init__(self, aside: bool, pending: int):
        super().__init__()
        self.indexes_aside = aside
        self.pending = pending
        self.threads: list[str] = []

    def index_search(self, limit: int) -> int:
        self.threads.append(threading.current_thread().name)
        done = min(limit, self.pending)
        self.pending -= done
        return done


@pytest.mark.parametrize("aside", [False, True])
def test_indexing_runs_on_the_store_thread_unless_the_store_indexes_aside(aside):
    """SQLite's indexing stays on the store's thread (it waits for the one write lock
    anyway); PostgreSQL's, on a connection of its own, gets a thread of its own, so that
    claims and outcomes on the store's thread are not held up behind it. Every pending event
    is indexed, in batches, either way."""
    store = IndexingStore(aside, pending=45)
    upkeep = Upkeep(StoreThread(store), Settings(), clock=lambda: 0.0)
    asyncio.run(upkeep.index())
    assert store.pending == 0 and len(store.threads) >= 2
    on_store_thread = {name.startswith("relay-store") for name in store.threads}
    assert on_store_thread == {not aside}
