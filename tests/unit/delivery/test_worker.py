"""The delivery worker: calls made and outcomes recorded, the fallback bot, the ramp at work,
and shutting down cleanly."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import httpx
import pytest

from relay.config import Settings
from relay.delivery.engati import EngatiClient
from relay.delivery.worker import Worker
from relay.mapping import Engati
from relay.sources.registry import Registry
from relay.web.app import create_app
from tests.unit.delivery.clock import NOW, FakeClock

SUCCESS = {"status": {"code": 1000, "desc": "SUCCESS"}}
MAPPING = """
engati: {customer_id: "1", bot_key: b, api_key: k, base_url: "%s"}
phone: body.phone
flows: [{flow_key: F}]
"""
DEADLINE = 10.0  # seconds any scenario below may take at most


@pytest.fixture
def registry(write_mapping, engati):
    path = write_mapping(MAPPING % engati.url, name="leads")
    registry = Registry(path.parent)
    registry.load()
    return registry


@pytest.fixture
def make_worker(store, registry, engati):
    """A worker whose calls go to the fake Engati, answered by `handler`."""
    def make(handler, clock=None, registry=registry, **options):
        engati.handler = handler
        settings = {"retry_base": 2.0, "retry_cap": 3600.0, "max_attempts": 5,
                    "max_age": 86400.0}
        settings.update((k, options.pop(k)) for k in list(options) if hasattr(Settings, k))
        return Worker(store, Settings(**settings), registry, EngatiClient(),
                      clock=clock or FakeClock(), rng=lambda: 0.5, name="w1", **options)

    return make


def ok(request):
    return httpx.Response(200, json=SUCCESS)


def wait_for(condition, what):
    """Poll `condition` on the running loop until it holds, for at most DEADLINE."""
    async def wait():
        deadline = time.monotonic() + DEADLINE
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.005)

    return wait()


class TestOutcomes:
    def test_success_is_recorded(self, queue, deliveries, make_worker):
        """A 200 with code 1000 marks the delivery delivered."""
        event_id = queue()
        assert asyncio.run(make_worker(ok).run_once()) == 1
        (d,) = deliveries(event_id)
        assert (d["status"], d["attempts"], d["attempt_log"][0]["http_status"]) == (
            "delivered", 1, 200)

    def test_503_is_retried_after_the_backoff(self, queue, deliveries, make_worker):
        """A transient failure schedules the next attempt base * 2^0 * jitter later."""
        event_id = queue()
        asyncio.run(make_worker(lambda r: httpx.Response(503)).run_once())
        (d,) = deliveries(event_id)
        assert (d["status"], d["next_at"], d["last_error"]) == (
            "pending", NOW + 1.0, "Engati answered HTTP 503")

    def test_400_is_dead_at_once(self, queue, deliveries, make_worker):
        """A refused request is not retried."""
        event_id = queue()
        asyncio.run(make_worker(lambda r: httpx.Response(400)).run_once())
        assert deliveries(event_id)[0]["status"] == "dead"

    def test_gives_up_after_max_attempts(self, queue, deliveries, make_worker):
        """Attempt after attempt, the last allowed one makes the delivery dead."""
        event_id = queue()
        clock = FakeClock()
        worker = make_worker(lambda r: httpx.Response(503), clock, max_attempts=2,
                             retry_cap=1)
        asyncio.run(worker.run_once())
        clock.now += 10
        asyncio.run(worker.run_once())
        (d,) = deliveries(event_id)
        assert (d["status"], d["attempts"], d["last_error"]) == (
            "dead", 2, "Engati answered HTTP 503; gave up after 2 attempts")

    def test_a_429_pauses_the_bot_for_every_worker(self, store, queue, make_worker):
        """Engati's Retry-After on a 429 is stored as the bot's pause."""
        queue()
        worker = make_worker(lambda r: httpx.Response(429, headers={"Retry-After": "30"}))
        asyncio.run(worker.run_once())
        assert store.paused_until("1/b") == NOW + 30

    def test_missing_settings_wait(self, store, queue, deliveries, write_mapping, monkeypatch,
                                   make_worker):
        """Without an API key anywhere, nothing is sent: the delivery waits, saying what to
        set."""
        for name in ("ENGATI_CUSTOMER_ID", "ENGATI_BOT_KEY", "ENGATI_API_KEY"):
            monkeypatch.delenv(name, raising=False)
        registry = Registry(write_mapping(name="leads").parent)
        registry.load()
        event_id = queue()
        calls = []
        worker = make_worker(lambda r: calls.append(r) or httpx.Response(200),
                             registry=registry)
        asyncio.run(worker.run_once())
        (d,) = deliveries(event_id)
        assert (calls, d["status"], d["last_error"]) == (
            [], "pending",
            "engati settings not set: ENGATI_CUSTOMER_ID, ENGATI_BOT_KEY, ENGATI_API_KEY")


class TestRemovedMapping:
    def test_goes_to_the_fallback_bot(self, queue, deliveries, make_worker, engati):
        """A delivery whose mapping was removed since its event arrived is sent to the
        fallback target the worker was given."""
        event_id = queue(mapping="gone")
        seen = []
        worker = make_worker(lambda r: seen.append(str(r.url)) or ok(r),
                             fallback=Engati("9", "fb", "k", base_url=engati.url))
        asyncio.run(worker.run_once())
        assert deliveries(event_id)[0]["status"] == "delivered"
        assert seen == [f"{engati.url}/bot-api/v2.0/customer/9/bot/fb/flow/F"]

    def test_waits_without_one_whatever_the_environment(self, queue, deliveries,
                                                        monkeypatch, make_worker, engati):
        """The worker reads no environment variable: without a fallback, ENGATI_* set in
        the environment are not used, and the delivery waits, unconfigured."""
        for name, value in {"ENGATI_CUSTOMER_ID": "1", "ENGATI_BOT_KEY": "b",
                            "ENGATI_API_KEY": "k", "ENGATI_BASE_URL": engati.url}.items():
            monkeypatch.setenv(name, value)
        event_id = queue(mapping="gone")
        asyncio.run(make_worker(ok).run_once())
        (d,) = deliveries(event_id)
        assert (d["status"], d["last_error"]) == (
            "pending",
            "engati settings not set: ENGATI_CUSTOMER_ID, ENGATI_BOT_KEY, ENGATI_API_KEY")


def test_metrics_count_attempts(store, registry, queue, make_worker, tmp_path):
    """/metrics shows the worker's attempts and call latency once it delivered."""
    app = create_app(Settings(database_url="sqlite://", mappings=str(tmp_path)), store=store,
                     registry=registry)

    def scrape() -> tuple[float, float]:
        text = app.test_client().get("/metrics").get_data(as_text=True)
        attempts = re.search(r'^relay_delivery_attempts_total\{mapping="leads",'
                             r'outcome="delivered"\} (\S+)$', text, re.M)
        calls = re.search(r"^relay_engati_call_seconds_count (\S+)$", text, re.M)
        return (float(attempts[1]) if attempts else 0.0), (float(calls[1]) if calls else 0.0)

    before = scrape()
    queue()
    asyncio.run(make_worker(ok).run_once())
    assert scrape() == (before[0] + 1, before[1] + 1)


class TestRun:
    def test_many_calls_are_in_flight_at_once(self, queue, make_worker):
        """With concurrency 8, eight slow calls overlap instead of running one by one."""
        queue(count=8)
        active = peak = 0

        async def handler(request):
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            deadline = time.monotonic() + DEADLINE
            while peak < 8 and time.monotonic() < deadline:  # hold until all eight are in
                await asyncio.sleep(0.01)
            active -= 1
            return ok(request)

        asyncio.run(make_worker(handler, concurrency=8).run_once())
        assert peak == 8

    def test_no_more_calls_in_flight_than_the_ramp_opened(self, queue, deliveries,
                                                          make_worker):
        """While the ramp stands at its first step (a frozen monotonic clock), a worker
        with 16 slots keeps two calls in flight at most, and still delivers everything."""
        event_id = queue(count=16)
        active = peak = 0

        async def handler(request):
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.01)
            active -= 1
            return ok(request)

        worker = make_worker(handler, concurrency=16, poll_interval=0.01,
                             monotonic=lambda: 100.0)

        async def scenario():
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            await wait_for(lambda: all(d["status"] == "delivered"
                                       for d in deliveries(event_id)), "every delivery")
            stop.set()
            await task

        asyncio.run(scenario())
        assert peak == 2

    def stop_while_in_flight(self, worker, grace):
        """Run the worker, and stop it as soon as a call has reached Engati."""
        async def scenario():
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop, grace=grace))
            await wait_for(self.reached.is_set, "a call to reach Engati")
            stop.set()
            await asyncio.wait_for(task, DEADLINE)

        asyncio.run(scenario())

    def slow(self, seconds):
        self.reached = threading.Event()

        async def handler(request):
            self.reached.set()
            await asyncio.sleep(seconds)
            return ok(request)

        return handler

    def test_stop_lets_calls_finish_within_grace(self, queue, deliveries, make_worker):
        """On stop, calls in flight finish and are recorded; nothing new is claimed."""
        event_id = queue(count=2)
        self.stop_while_in_flight(make_worker(self.slow(0.05)), grace=5)
        assert [d["status"] for d in deliveries(event_id)] == ["delivered", "delivered"]

    def test_calls_past_the_grace_are_released(self, queue, deliveries, make_worker):
        """A call still running after the grace period is cancelled and its claim given back."""
        event_id = queue()
        self.stop_while_in_flight(make_worker(self.slow(30)), grace=0.05)
        (d,) = deliveries(event_id)
        assert (d["status"], d["attempts"], d["leased_by"]) == ("pending", 0, None)


class TestIdle:
    """How long an idle worker sleeps between claims: until the earliest scheduled delivery
    is due when that comes before the poll interval ends, else the poll interval (new work
    is found by claiming again)."""

    def sleeps(self, worker, clock, rounds):
        """Run the worker, its idle waits recorded and passed on the fake clock at once;
        the waits' lengths, once `rounds` of them were taken."""
        slept: list[float] = []
        stop = asyncio.Event()

        async def idle(_stop, timeout):
            slept.append(timeout)
            clock.now += timeout
            if len(slept) >= rounds:
                stop.set()
            await asyncio.sleep(0)  # let the calls in flight run, as a real wait would

        worker._idle = idle
        asyncio.run(asyncio.wait_for(worker.run(stop), DEADLINE))
        return slept

    def test_nothing_pending_sleeps_the_poll_interval(self, make_worker):
        """With no delivery pending, every wait is the whole poll interval: the ramp's short
        steps are for work the worker has no free slot for yet, not for an empty queue."""
        clock = FakeClock()
        worker = make_worker(ok, clock, poll_interval=0.5)
        assert self.sleeps(worker, clock, rounds=3) == [0.5, 0.5, 0.5]

    def test_sleeps_until_a_scheduled_delivery_is_due(self, store, deliveries, make_worker):
        """With one delivery due in 0.2 s, the worker sleeps 0.2 s, not the poll interval;
        then delivers it, and with nothing left waits the poll interval."""
        from relay.mapping import Delivery, Result
        from relay.model import Received
        later = Delivery("F", "whatsapp", "919812345678", {}, None, send_at=NOW + 0.2,
                         why="delay 0.2s")
        event_id = store.accept(Received("leads", b"{}", {}, {}, Result((later,)),
                                         NOW)).event_id
        clock = FakeClock()
        worker = make_worker(ok, clock, poll_interval=0.5)
        slept = self.sleeps(worker, clock, rounds=3)
        assert slept[0] == pytest.approx(0.2)
        assert slept[-1] == 0.5
        (d,) = deliveries(event_id)
        assert d["status"] == "delivered" and d["attempt_log"][0]["started_at"] >= NOW + 0.2

    def test_a_delivery_in_flight_is_not_waited_for(self, store, make_worker):
        """next_due counts no leased delivery: a worker whose only pending delivery is
        leased elsewhere sleeps the poll interval, not 0 s over and over."""
        from relay.mapping import Delivery, Result
        from relay.model import Received
        store.accept(Received("leads", b"{}", {}, {}, Result((
            Delivery("F", "whatsapp", "919812345678", {}),)), NOW))
        assert len(store.claim("w2", 10, NOW, 60)) == 1  # another worker holds it
        clock = FakeClock()
        worker = make_worker(ok, clock, poll_interval=0.5)
        assert self.sleeps(worker, clock, rounds=2) == [0.5, 0.5]


def test_retention_purges_on_schedule(store, queue, make_worker):
    """With RELAY_RETENTION set, the worker purges finished events older than it."""
    event_id = queue(now=NOW - 40 * 86400)
    worker = make_worker(ok, retention="30d")
    asyncio.run(worker.run_once())
    worker.upkeep.retention_every = 0.05

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        await wait_for(lambda: store.event(event_id) is None, "the purge")
        stop.set()
        await asyncio.wait_for(task, DEADLINE)

    asyncio.run(scenario())
    assert store.event(event_id) is None


def test_the_worker_indexes_new_events_for_search(store, make_worker):
    """Events stored while the worker runs are indexed by it: the webhooks' own transactions
    index nothing."""
    from relay.mapping import Result
    from relay.model import Received
    event_id = store.accept(Received("leads", b'{"name": "Asha Rao"}', {}, {}, Result(),
                                     NOW)).event_id
    worker = make_worker(ok)
    found = ("SELECT rowid FROM events_search WHERE events_search MATCH '\"asha rao\"'"
             if store.engine.dialect.name == "sqlite"
             else "SELECT id FROM events_search WHERE strpos(body, 'Asha Rao') > 0")

    def indexed() -> bool:
        with store.engine.connect() as conn:
            return conn.exec_driver_sql(found).scalars().all() == [event_id]

    assert not indexed()

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        await wait_for(indexed, "the search index")
        stop.set()
        await asyncio.wait_for(task, DEADLINE)

    asyncio.run(scenario())
    assert [row["id"] for row in store.events(text="Asha Rao")] == [event_id]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
class TestWaking:
    """On PostgreSQL an idle worker is woken by new work (relay/store/wake.py), long before
    its poll interval (30 s here) would have found it."""

    def running(self, store, make_worker, scenario):
        """Run a worker on the real clock, and `scenario(worker, claims)` once it is idle
        and listening: `claims` counts its claims so far."""
        claims = [0]
        claim = store.claim

        def counted(*args):
            claims[0] += 1
            return claim(*args)

        store.claim = counted
        worker = make_worker(ok, clock=time.time, poll_interval=30.0)

        async def run():
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            # The first claim, and the one the listener asks for once it has connected.
            await wait_for(lambda: worker.waiter.backend_pid is not None and claims[0] >= 2,
                           "the worker to listen")
            await scenario(worker, claims)
            stop.set()
            await asyncio.wait_for(task, DEADLINE)

        asyncio.run(asyncio.wait_for(run(), 3 * DEADLINE))

    def accepted(self, store):
        from relay.mapping import Delivery, Result
        from relay.model import Received
        return store.accept(Received("leads", b"{}", {}, {}, Result((
            Delivery("F", "whatsapp", "919812345678", {}),)), time.time())).event_id

    def delivered(self, store, event_id):
        return [d["status"] for d in store.event(event_id)["deliveries"]] == ["delivered"]

    def test_a_webhook_wakes_an_idle_worker(self, store, make_worker):
        """A webhook accepted while the worker sleeps is delivered within seconds."""
        async def scenario(worker, claims):
            event_id = await asyncio.to_thread(self.accepted, store)
            await wait_for(lambda: self.delivered(store, event_id), "the delivery")

        self.running(store, make_worker, scenario)

    def test_the_worker_is_woken_after_its_listener_lost_its_connection(self, store,
                                                                        make_worker):
        """Its listener's connection killed (pg_terminate_backend), the worker listens again
        and is woken by the next webhook as before."""
        import sqlalchemy as sa

        from tests.conftest import POSTGRES_URL

        async def scenario(worker, claims):
            first = worker.waiter.backend_pid
            killer = sa.create_engine(POSTGRES_URL)
            with killer.begin() as conn:
                conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            killer.dispose()
            before = claims[0]
            await wait_for(lambda: worker.waiter.backend_pid not in (None, first)
                           and claims[0] > before, "the listener to connect again")
            event_id = await asyncio.to_thread(self.accepted, store)
            await wait_for(lambda: self.delivered(store, event_id), "the delivery")

        self.running(store, make_worker, scenario)
