"""Group commit: many concurrent items to one write, each caller with its own result."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from relay.errors import StoreUnavailable
from relay.store.group_commit import GroupCommit


def test_waiting_items_are_written_together():
    """While one batch is written, those arriving wait and go in the next, together; each
    caller gets its own result."""
    batches = []

    def write(items):
        batches.append(len(items))
        time.sleep(0.02)  # a slow commit: the others pile up meanwhile
        return [item * 2 for item in items]

    group = GroupCommit(write)
    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(group.submit, range(64))) == [n * 2 for n in range(64)]
    assert sum(batches) == 64
    assert max(batches) > 1
    assert len(batches) < 64


def test_a_failed_write_fails_each_of_its_items_and_the_next_batch_goes_on():
    calls = iter([StoreUnavailable("database is locked")])

    def write(items):
        if error := next(calls, None):
            raise error
        return items

    group = GroupCommit(write)
    with pytest.raises(StoreUnavailable):
        group.submit(1)
    assert group.submit(2) == 2


def test_items_handed_in_together_are_written_together_each_with_its_own_result():
    """submit_many: one caller's items share a batch (with what others hand in), and an item
    the write refused comes back as its exception, not raised."""
    batches = []

    def write(items):
        batches.append(sorted(items))
        return [ValueError(item) if item == 3 else item * 2 for item in items]

    group = GroupCommit(write)
    results = group.submit_many([1, 2, 3, 4])
    assert batches == [[1, 2, 3, 4]]
    assert results[:2] == [2, 4] and results[3] == 8
    assert isinstance(results[2], ValueError)
    assert group.submit_many([]) == [] and group.submit(5) == 10  # nothing handed in: no lead


def test_items_handed_in_together_while_a_batch_is_written_wait_for_the_next():
    writing, release, batches = threading.Event(), threading.Event(), []

    def write(items):
        batches.append(sorted(items))
        writing.set()
        assert release.wait(10)
        return items

    group = GroupCommit(write, limit=3)
    with ThreadPoolExecutor(2) as pool:
        alone = pool.submit(group.submit, 0)
        assert writing.wait(10)
        many = pool.submit(group.submit_many, [1, 2, 3, 4])
        deadline = time.monotonic() + 10
        while len(group._waiting) < 4:  # handed in, waiting for the first batch to end
            assert time.monotonic() < deadline
            time.sleep(0.001)
        release.set()
        assert alone.result(10) == 0
        assert many.result(10) == [1, 2, 3, 4]
    assert batches == [[0], [1, 2, 3], [4]]  # the limit splits them; all are written
