"""The recorder: outcomes written in batches, and kept trying while the database is down,
for as long as the leases last (on a fake clock)."""

from __future__ import annotations

import asyncio

import pytest

from relay.delivery.recorder import Recorder
from relay.delivery.store_thread import StoreThread
from relay.errors import StoreUnavailable
from relay.model import Attempt, FailureKind, Outcome
from tests.unit.delivery.clock import FakeClock


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def recorder(store, clock):
    return Recorder(StoreThread(store), "w1", clock=clock, sleep=clock.sleep)


@pytest.fixture
def claim(store, queue, clock):
    def claim(count=1):
        queue(count, now=clock.now)
        return store.claim("w1", count, clock.now, 60)

    return claim


def delivered(claimed):
    return Attempt(claimed.id, claimed.created_at, 5.0, Outcome.DELIVERED, 200, 1000)


def retry(claimed):
    return Attempt(claimed.id, claimed.created_at, 5.0, Outcome.RETRY, 503, None,
                   "Engati answered HTTP 503", FailureKind.SERVER, claimed.created_at + 10)


def record_all(recorder, claimed, outcome=delivered):
    async def scenario():
        results = await asyncio.gather(*(recorder.record(c, outcome(c)) for c in claimed),
                                       return_exceptions=True)
        await recorder.close()
        return results

    return asyncio.run(scenario())


@pytest.fixture
def writes(store, monkeypatch):
    """The batches record_many is given, in order; `failures` make the first calls fail."""
    batches, failures = [], []
    record_many = store.record_many

    def spy(attempts, worker, now):
        batches.append(len(attempts))
        if failures:
            raise failures.pop(0)
        return record_many(attempts, worker, now)

    monkeypatch.setattr(store, "record_many", spy)
    return batches, failures


def test_outcomes_that_finish_together_are_written_together(recorder, claim, writes,
                                                            deliveries):
    """Five outcomes handed over at once take one transaction."""
    claimed = claim(5)
    assert record_all(recorder, claimed) == [True] * 5
    assert writes[0] == [5]
    assert [d["status"] for d in deliveries(claimed[0].event_id)] == ["delivered"] * 5


def test_an_outcome_is_written_once_the_database_is_back(recorder, claim, writes, clock,
                                                         deliveries):
    """While the database is unavailable the batch is tried again, backing off."""
    batches, failures = writes
    failures.extend([StoreUnavailable("database is locked")] * 2)
    (claimed,) = claim()
    assert record_all(recorder, [claimed]) == [True]
    assert (batches, clock.slept) == ([1, 1, 1], [0.05, 0.1])
    assert deliveries(claimed.event_id)[0]["status"] == "delivered"


def test_an_outcome_not_written_within_its_lease_is_left_to_it(recorder, claim, writes,
                                                               clock, deliveries):
    """Past the lease, the recorder gives up: the delivery stays pending and is called again
    once the lease runs out (at least once, never lost)."""
    batches, failures = writes
    failures.extend([StoreUnavailable("database is locked")] * 100)
    (claimed,) = claim()
    (result,) = record_all(recorder, [claimed])
    assert isinstance(result, StoreUnavailable)
    assert len(batches) > 3  # it kept trying, backing off, until about the lease's end
    assert claimed.lease_until - 1.0 <= clock.now < claimed.lease_until + 1.0
    (d,) = deliveries(claimed.event_id)
    assert (d["status"], d["attempts"], d["leased_by"]) == ("pending", 0, "w1")


def test_a_failure_after_the_lease_was_lost_is_not_kept(store, recorder, claim, deliveries):
    """Another worker may hold the delivery now: a failed attempt does not change it, and
    the recorder says so."""
    (claimed,) = claim()
    store.release([claimed.id], "w1")
    assert record_all(recorder, [claimed], retry) == [False]
    assert deliveries(claimed.event_id)[0]["attempts"] == 0


def test_a_recorder_serves_one_loop_after_another(recorder, claim):
    """Each event loop gets its own writing task (tests and `run_once` start several)."""
    assert record_all(recorder, claim()) == [True]
    assert record_all(recorder, claim()) == [True]
