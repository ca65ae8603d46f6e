"""Quiet hours in the worker: a retry, or a paced bot's deferral, that would fall inside the
mapping's quiet window waits for its end (the first attempt's time is set at intake)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from relay.config import Settings
from relay.delivery.engati import EngatiClient
from relay.delivery.worker import Worker
from relay.sources.registry import Registry
from tests.unit.delivery.clock import FakeClock

# NOW is 2023-11-14 22:13:20 UTC: inside 21:00-09:00 UTC.
MORNING = datetime(2023, 11, 15, 9, 0, tzinfo=UTC).timestamp()
MAPPING = """
engati: {customer_id: "1", bot_key: b, api_key: k, base_url: "%s"}
phone: body.phone
flows: [{flow_key: F}]
quiet_hours: {from: "21:00", to: "09:00", timezone: UTC}
"""


@pytest.fixture
def worker(store, write_mapping, engati):
    registry = Registry(write_mapping(MAPPING % engati.url, name="leads").parent)
    registry.load()
    return Worker(store, Settings(retry_base=2.0, max_attempts=5), registry, EngatiClient(),
                  clock=FakeClock(), rng=lambda: 0.5, name="w1")


def test_a_retry_waits_out_the_quiet_hours(queue, deliveries, worker, engati):
    """A 503 at 22:13 UTC would be retried a second later; quiet until 09:00, it waits."""
    engati.handler = lambda request: httpx.Response(503)
    event_id = queue()
    asyncio.run(worker.run_once())
    (d,) = deliveries(event_id)
    assert (d["status"], d["attempts"], d["next_at"]) == ("pending", 1, MORNING)


def test_a_retry_outside_the_window_is_left(queue, deliveries, worker, engati):
    """At 10:00 UTC, outside the window, the retry keeps its backoff."""
    engati.handler = lambda request: httpx.Response(503)
    worker.clock.now = ten = datetime(2023, 11, 15, 10, 0, tzinfo=UTC).timestamp()
    event_id = queue(now=ten)
    asyncio.run(worker.run_once())
    (d,) = deliveries(event_id)
    assert d["next_at"] == ten + 1.0
