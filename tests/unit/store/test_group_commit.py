"""Group commit: many concurrent items to one write, each caller with its own result."""

from __future__ import annotations

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
