"""The delivery worker: outcomes, backoff, giving up, and shutting down cleanly."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from relay.config import Settings
from relay.delivery.engati import EngatiClient
from relay.delivery.worker import RAMP_STEP, Worker, backoff
from relay.errors import StoreUnavailable
from relay.mapping import Delivery, Result
from relay.model import Received
from relay.sources.registry import Registry

NOW = 1_700_000_000.0
SUCCESS = {"status": {"code": 1000, "desc": "SUCCESS"}}
MAPPING = """
engati: {customer_id: "1", bot_key: b, api_key: k, base_url: "%s"}
phone: body.phone
flows: [{flow_key: F}]
"""


class Clock:
    def __init__(self):
        self.now = NOW

    def __call__(self):
        return self.now


@pytest.fixture
def registry(write_mapping, engati):
    path = write_mapping(MAPPING % engati.url, name="leads")
    registry = Registry(path.parent)
    registry.load()
    return registry


def queue(store, count=1, now=NOW):
    deliveries = tuple(Delivery("F", "whatsapp", "919812345678", {"i": i}, None, i)
                       for i in range(count))
    return store.accept(Received("leads", b"{}", {}, {}, Result(deliveries), now)).event_id


@pytest.fixture
def make_worker(engati):
    """A worker whose calls go to the fake Engati, answered by `handler`."""
    def make(store, registry, handler, clock=None, **settings):
        engati.handler = handler
        defaults = {"retry_base": 2.0, "retry_cap": 3600.0, "max_attempts": 5,
                    "max_age": 86400.0}
        return Worker(store, Settings(**{**defaults, **settings}), registry, EngatiClient(),
                      clock=clock or Clock(), rng=lambda: 0.5, name="w1")

    return make


def deliveries(store, event_id):
    return store.event(event_id)["deliveries"]


class TestBackoff:
    def test_exponential_with_full_jitter_and_a_cap(self):
        """Delay = random share of min(cap, base * 2^(n-1))."""
        settings = Settings(retry_base=2, retry_cap=60)
        assert [backoff(n, settings, rng=lambda: 1.0) for n in (1, 2, 3, 6, 7, 20)] == [
            2, 4, 8, 60, 60, 60]
        assert backoff(3, settings, rng=lambda: 0.25) == 2

    def test_retry_after_is_honoured_but_capped(self):
        """Engati's Retry-After is a floor, itself capped."""
        settings = Settings(retry_base=2, retry_cap=60)
        assert backoff(1, settings, 30, rng=lambda: 0.0) == 30
        assert backoff(1, settings, 9999, rng=lambda: 0.0) == 60

    def test_defaults_span_about_a_day(self):
        """With the defaults, the expected schedule before giving up by attempts is a day."""
        settings = Settings()
        attempts = range(1, settings.max_attempts)
        expected = sum(backoff(n, settings, rng=lambda: 0.5) for n in attempts)
        assert 18 * 3600 < expected < 30 * 3600
        assert settings.max_age == 86400


class TestOutcomes:
    def test_success_is_recorded(self, store, registry, make_worker):
        """A 200 with code 1000 marks the delivery delivered."""
        event_id = queue(store)
        worker = make_worker(store, registry, lambda r: httpx.Response(200, json=SUCCESS))
        assert asyncio.run(worker.run_once()) == 1
        (d,) = deliveries(store, event_id)
        assert (d["status"], d["attempts"], d["attempt_log"][0]["http_status"]) == (
            "delivered", 1, 200)

    def test_503_is_retried_after_the_backoff(self, store, registry, make_worker):
        """A transient failure schedules the next attempt base * 2^0 * jitter later."""
        event_id = queue(store)
        clock = Clock()
        worker = make_worker(store, registry, lambda r: httpx.Response(503), clock)
        asyncio.run(worker.run_once())
        (d,) = deliveries(store, event_id)
        assert (d["status"], d["next_at"], d["last_error"]) == (
            "pending", NOW + 1.0, "Engati answered HTTP 503")

    def test_400_is_dead_at_once(self, store, registry, make_worker):
        """A refused request is not retried."""
        event_id = queue(store)
        asyncio.run(make_worker(store, registry, lambda r: httpx.Response(400)).run_once())
        assert deliveries(store, event_id)[0]["status"] == "dead"

    def test_gives_up_after_max_attempts(self, store, registry, make_worker):
        """The last allowed attempt that fails makes the delivery dead, saying why."""
        event_id = queue(store)
        clock = Clock()
        worker = make_worker(store, registry, lambda r: httpx.Response(503), clock,
                             max_attempts=2, retry_cap=1)
        asyncio.run(worker.run_once())
        clock.now += 10
        asyncio.run(worker.run_once())
        (d,) = deliveries(store, event_id)
        assert d["status"] == "dead"
        assert d["last_error"] == "Engati answered HTTP 503; gave up after 2 attempts"

    def test_gives_up_after_max_age(self, store, registry, make_worker):
        """A delivery older than RELAY_MAX_AGE that fails again is dead."""
        event_id = queue(store)
        clock = Clock()
        clock.now += 100
        worker = make_worker(store, registry, lambda r: httpx.Response(503), clock, max_age=50)
        asyncio.run(worker.run_once())
        assert deliveries(store, event_id)[0]["last_error"].endswith("gave up after 50s")

    def test_an_outcome_is_recorded_once_the_database_is_back(self, store, registry,
                                                              monkeypatch, make_worker):
        """The database is unavailable when the call returns: the outcome is written when
        it answers again, within the lease, and Engati is not called twice."""
        event_id = queue(store)
        calls, failures = [], iter([StoreUnavailable("database is locked")] * 2)
        record_many = store.record_many

        def flaky(*args):
            if failure := next(failures, None):
                raise failure
            return record_many(*args)

        monkeypatch.setattr(store, "record_many", flaky)
        worker = make_worker(store, registry,
                             lambda r: calls.append(r) or httpx.Response(200, json=SUCCESS))
        asyncio.run(worker.run_once())
        (d,) = deliveries(store, event_id)
        assert (d["status"], d["attempts"], len(calls)) == ("delivered", 1, 1)

    def test_an_outcome_not_recorded_within_the_lease_is_left_to_it(self, store, registry,
                                                                  monkeypatch, make_worker):
        """Past the lease, the worker stops trying to record: the delivery stays pending and
        is called again once the lease runs out (at least once, never lost)."""
        event_id = queue(store)
        clock = Clock()

        def down(*args):
            clock.now += 20  # each try takes a while: the 60 s lease runs out on the 3rd
            raise StoreUnavailable("database is locked")

        monkeypatch.setattr(store, "record_many", down)
        worker = make_worker(store, registry, lambda r: httpx.Response(200, json=SUCCESS),
                             clock, lease=60)
        asyncio.run(asyncio.wait_for(worker.run_once(), 10))
        (d,) = deliveries(store, event_id)
        assert (d["status"], d["attempts"], d["leased_by"]) == ("pending", 0, "w1")

    def test_missing_settings_wait(self, store, write_mapping, monkeypatch, make_worker):
        """Without an API key anywhere, the delivery waits and says what to set."""
        for name in ("ENGATI_CUSTOMER_ID", "ENGATI_BOT_KEY", "ENGATI_API_KEY"):
            monkeypatch.delenv(name, raising=False)
        registry = Registry(write_mapping(name="leads").parent)
        registry.load()
        event_id = queue(store)
        calls = []
        worker = make_worker(store, registry, lambda r: calls.append(r) or httpx.Response(200))
        asyncio.run(worker.run_once())
        (d,) = deliveries(store, event_id)
        assert calls == []
        assert d["status"] == "pending"
        assert d["last_error"] == ("engati settings not set: ENGATI_CUSTOMER_ID, ENGATI_BOT_KEY, "
                                   "ENGATI_API_KEY")


async def stop_while_in_flight(worker, grace):
    """Run the worker, and stop it as soon as a call is in flight."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop, grace=grace))
    while not worker._in_flight:
        await asyncio.sleep(0.005)
    stop.set()
    await asyncio.wait_for(task, 5)


class TestRun:
    def test_many_calls_are_in_flight_at_once(self, store, registry, make_worker):
        """With concurrency 8, eight slow calls overlap instead of running one by one."""
        queue(store, count=8)
        active = peak = 0

        async def handler(request):
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            for _ in range(200):  # hold each call until all eight are in, or 2 s pass
                if peak == 8:
                    break
                await asyncio.sleep(0.01)
            active -= 1
            return httpx.Response(200, json=SUCCESS)

        worker = make_worker(store, registry, handler, concurrency=8)
        asyncio.run(worker.run_once())
        assert peak == 8

    def test_slots_open_in_steps_from_a_standing_start(self, store, registry, make_worker):
        """A worker starting on a full queue opens an eighth of its slots per RAMP_STEP:
        its first calls do not all start (and come back) in one wave."""
        queue(store, count=16)
        started: list[float] = []

        async def handler(request):
            started.append(time.monotonic())
            for _ in range(300):  # hold each call until all sixteen are in, or 3 s pass
                if len(started) == 16:
                    break
                await asyncio.sleep(0.005)
            return httpx.Response(200, json=SUCCESS)

        async def scenario():
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            while len(started) < 16:
                await asyncio.sleep(0.005)
            stop.set()
            await asyncio.wait_for(task, 5)

        worker = make_worker(store, registry, handler, concurrency=16, poll_interval=0.01)
        asyncio.run(asyncio.wait_for(scenario(), 10))
        offsets = [t - started[0] for t in started]
        # Two slots a step: a few calls, not sixteen, start within a step of the first; the
        # eighth step opens seven steps after the first (some slack for a slow first call).
        assert sum(offset < RAMP_STEP for offset in offsets) <= 6
        assert offsets[-1] >= 4 * RAMP_STEP

    def test_stop_lets_calls_finish_within_grace(self, store, registry, make_worker):
        """On stop, calls in flight finish and are recorded; nothing new is claimed."""
        event_id = queue(store, count=2)

        async def handler(request):
            await asyncio.sleep(0.05)
            return httpx.Response(200, json=SUCCESS)

        asyncio.run(stop_while_in_flight(make_worker(store, registry, handler), grace=5))
        assert [d["status"] for d in deliveries(store, event_id)] == ["delivered", "delivered"]

    def test_calls_past_the_grace_are_released(self, store, registry, make_worker):
        """A call still running after the grace period is cancelled and its claim given back."""
        event_id = queue(store)

        async def handler(request):
            await asyncio.sleep(30)

        asyncio.run(stop_while_in_flight(make_worker(store, registry, handler), grace=0.05))
        (d,) = deliveries(store, event_id)
        assert (d["status"], d["attempts"], d["leased_by"]) == ("pending", 0, None)


def test_retention_purges_on_schedule(store, registry, make_worker):
    """With RELAY_RETENTION set, the worker purges finished events older than it."""
    event_id = queue(store, now=NOW - 40 * 86400)
    worker = make_worker(store, registry, lambda r: httpx.Response(200, json=SUCCESS),
                         clock=lambda: NOW, retention="30d")
    asyncio.run(worker.run_once())
    worker.retention_every = 0.05

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        while store.event(event_id) is not None:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert store.event(event_id) is None
