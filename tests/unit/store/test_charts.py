"""The dashboard's series (relay/store/charts.py), bucketed in SQL on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from relay.mapping import Delivery, Result
from relay.model import Attempt, Outcome
from tests.unit.store.helpers import FAILED, LEASE, NOW, accept

HOUR = 3600.0
START = NOW - 24 * HOUR  # the window: 24 buckets of an hour, ending at NOW


def one(phone: str = "919800000001") -> Result:
    return Result((Delivery("FLOW", "whatsapp", phone, {}),))


def attempt(store, at: float, outcome: str, duration_ms: float = 100.0) -> None:
    """Claim the oldest due delivery at `at` and record one attempt of it."""
    (claimed,) = store.claim("w", 1, at, LEASE)
    store.record_many([Attempt(claimed.id, at, duration_ms, outcome, 200, 1000,
                               next_at=at + 60 if outcome == Outcome.RETRY else None)], "w", at)


def test_webhooks_in_per_mapping_per_hour(store):
    """Events are counted in the hour they were received, per mapping; none outside the
    window."""
    accept(store, one(), mapping="leads", now=START + 10)
    accept(store, one(), mapping="leads", now=START + 20)
    accept(store, FAILED, mapping="orders", now=START + 10)
    accept(store, one(), mapping="leads", now=START + 5 * HOUR + 1)
    accept(store, one(), mapping="leads", now=START - 1)  # before the window
    accept(store, one(), mapping="leads", now=NOW + 1)  # after it
    assert store.chart("webhooks", START, HOUR, 24) == [
        (0, "leads", 2.0), (0, "orders", 1.0), (5, "leads", 1.0)]


def test_attempts_by_outcome(store):
    for i in range(3):
        accept(store, one(f"9198000000{i:02d}"), now=START)
    attempt(store, START + 10, Outcome.DELIVERED)
    attempt(store, START + 20, Outcome.RETRY)
    attempt(store, START + HOUR + 1, Outcome.DEAD)
    assert store.chart("outcomes", START, HOUR, 24) == [
        (0, "delivered", 1.0), (0, "retry", 1.0), (1, "dead", 1.0)]


def test_latency_percentiles_by_nearest_rank(store):
    """p50 and p95 of the calls of each hour: of 1..20 ms, the 10th and the 19th."""
    for i in range(20):
        accept(store, one(f"9198000000{i:02d}"), now=START)
    for ms in range(20, 0, -1):
        attempt(store, START + 2 * HOUR + ms, Outcome.DELIVERED, float(ms))
    accept(store, one("919800000099"), now=START)
    attempt(store, START + 3 * HOUR, Outcome.DELIVERED, 7.5)  # one call: it is both
    assert store.chart("latency", START, HOUR, 24) == [
        (2, "p50", 10.0), (2, "p95", 19.0), (3, "p50", 7.5), (3, "p95", 7.5)]


def test_queue_depth_from_queued_and_finished_times(store):
    """A delivery counts as pending from its queueing to its final attempt: a retry keeps it
    pending; the depth of the last bucket is the queue now."""
    accept(store, one("919800000001"), now=START - HOUR)  # pending before the window
    accept(store, one("919800000002"), now=START + 2 * HOUR + 1)
    attempt(store, START + 3 * HOUR + 1, Outcome.DELIVERED)  # the older one delivered
    attempt(store, START + 4 * HOUR + 1, Outcome.RETRY)  # the other retried: still pending
    accept(store, one("919800000003"), now=START + 6 * HOUR + 1)
    (claimed,) = store.claim("w", 1, START + 8 * HOUR, LEASE)
    store.record_many([Attempt(claimed.id, START + 8 * HOUR, 5.0, Outcome.DEAD, 400, None)],
                      "w", START + 8 * HOUR)
    depth = {b: v for b, series, v in store.chart("queue", START, HOUR, 24)
             if series == "pending"}
    assert [depth[b] for b in range(10)] == [1, 1, 2, 1, 1, 1, 2, 2, 1, 1]
    assert depth[23] == store.queue_stats(NOW)[0] == 1
    assert len(depth) == 24


def test_an_unknown_chart_is_an_error(store):
    with pytest.raises(ValueError, match="no chart 'nope'"):
        store.chart("nope", START, HOUR, 24)
