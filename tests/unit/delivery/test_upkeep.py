"""The worker's upkeep: search indexing runs where it holds up the fewest deliveries."""

from __future__ import annotations

import asyncio
import threading

import pytest

from relay.config import Settings
from relay.delivery.store_thread import StoreThread
from relay.delivery.upkeep import INDEX_MOST, Upkeep
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
    store = IndexingStore(aside, pending=1045)
    upkeep = Upkeep(StoreThread(store), Settings(), clock=lambda: 0.0)
    asyncio.run(upkeep.index())
    assert store.pending == 0 and len(store.threads) >= 2
    on_store_thread = {name.startswith("relay-store") for name in store.threads}
    assert on_store_thread == {not aside}


@pytest.mark.parametrize("aside", [False, True])
def test_indexing_aside_takes_the_most_at_a_time(aside):
    """On SQLite a batch is sized to the write lock it holds (the first: as last measured);
    aside, nothing waits for it, and each takes INDEX_MOST (fewer statements an event)."""
    store = IndexingStore(aside, pending=1045)
    asked: list[int] = []
    index_search = store.index_search

    def spy(limit: int) -> int:
        asked.append(limit)
        return index_search(limit)

    store.index_search = spy  # type: ignore[method-assign]
    upkeep = Upkeep(StoreThread(store), Settings(), clock=lambda: 0.0)
    upkeep._index_batch = 20
    asyncio.run(upkeep.index())
    assert store.pending == 0
    if aside:
        assert asked == [INDEX_MOST, INDEX_MOST, INDEX_MOST]
    else:
        assert asked[0] == 20


class MergingStore(IndexingStore):
    """Merges left after indexing: `merges` steps' worth, whatever the pages asked."""

    def __init__(self, pending: int, merges: int):
        super().__init__(False, pending)
        self.merges = merges
        self.asked: list[int] = []

    def merge_search(self, pages: int) -> bool:
        self.threads.append(threading.current_thread().name)
        self.asked.append(pages)
        more = self.merges > 0
        self.merges -= more
        return more


def test_merges_follow_indexing_on_the_store_thread_until_none_is_left():
    """SQLite's index merges in transactions of their own after the indexing (migration
    0016), each on the store's thread, until the store says nothing is left; a pass that
    indexed nothing merges nothing (an idle worker writes nothing)."""
    store = MergingStore(pending=45, merges=3)
    upkeep = Upkeep(StoreThread(store), Settings(), clock=lambda: 0.0)
    asyncio.run(upkeep.index())
    assert store.pending == 0 and store.merges == 0
    assert len(store.asked) == 4 and store.asked[0] == 20  # three merged, one found none
    assert {name.startswith("relay-store") for name in store.threads} == {True}
    store.merges, store.asked = 5, []
    asyncio.run(upkeep.index())
    assert store.asked == [] and store.merges == 5
