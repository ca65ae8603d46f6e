"""Alerts in a running worker: the real Worker loop, the fake Engati on 127.0.0.1, a real
HTTP receiver, and the alerter's own thread beside the delivery loop."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from relay.alerts import alerter as alerter_module
from relay.config import Settings
from relay.delivery.engati import EngatiClient
from relay.delivery.worker import Worker
from relay.mapping import Delivery, Result
from relay.model import Received
from relay.sources.registry import Registry

DEADLINE = 10.0
MAPPING = """
engati: {customer_id: "1", bot_key: b, api_key: the-api-key-123, base_url: "%s"}
phone: body.phone
flows: [{flow_key: F}]
"""


@pytest.fixture
def worker(store, write_mapping, engati, receiver, monkeypatch):
    """A worker on the fake Engati, alerting to `receiver`, checking often (for the test)."""
    monkeypatch.setattr(alerter_module, "CHECK_EVERY", 0.2)
    monkeypatch.setattr(alerter_module, "SEND_EVERY", 0.1)
    registry = Registry(write_mapping(MAPPING % engati.url, name="leads").parent)
    registry.load()
    settings = Settings(alert_url=receiver.url, poll_interval=0.05, max_attempts=3)
    return Worker(store, settings, registry, EngatiClient(timeout=5), name="w1")


def queue(store, count):
    deliveries = tuple(Delivery("F", "whatsapp", "919812345678", {"i": i}, None, i)
                       for i in range(count))
    store.accept(Received("leads", b"{}", {}, {}, Result(deliveries), time.time()))


async def until(predicate, what):
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def statuses(store):
    return sorted(d["status"] for e in store.events() for d in store.event(e["id"])["deliveries"])


def test_a_worker_alerts_when_engati_refuses_the_key(store, worker, engati, receiver):
    """Engati answering 401: the deliveries die, and the worker posts the dead group and the
    wrong-key alert, without the key."""
    engati.handler = lambda request: httpx.Response(401)
    queue(store, 2)

    async def scenario():
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop, grace=1))
        await until(lambda: len(receiver.delivered()) >= 2, "two alerts")
        stop.set()
        await running

    asyncio.run(scenario())
    worker.alerter.join()
    assert sorted(m["key"] for m in receiver.delivered()) == ["dead:leads:auth", "engati_auth"]
    assert all("the-api-key-123" not in p["raw"] for p in receiver.posts)


def test_a_hanging_receiver_does_not_slow_deliveries(store, worker, engati, receiver):
    """While the alert receiver holds a POST unanswered, deliveries go on at once, and the
    worker still stops promptly."""
    receiver.hang = 30.0  # released when the receiver stops
    engati.handler = lambda request: httpx.Response(401)
    queue(store, 1)

    async def scenario():
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop, grace=1))
        await until(lambda: receiver.arrived >= 1, "an alert POST")
        engati.handler = lambda request: httpx.Response(200)
        started = time.monotonic()
        queue(store, 5)
        await until(lambda: statuses(store).count("delivered") == 5, "5 deliveries")
        delivered_in = time.monotonic() - started
        stop.set()
        stopping = time.monotonic()
        await running
        return delivered_in, time.monotonic() - stopping

    delivered_in, stopped_in = asyncio.run(scenario())
    assert receiver.posts == []  # the alert is still unanswered
    assert delivered_in < 2.0
    assert stopped_in < 3.0
    receiver.release()
    worker.alerter.join()  # the held alert is answered and recorded: sent, not lost
    # The other condition may have been judged only after the hang (the alerter's one
    # thread was held meanwhile): a last round, as the next worker would make, sends it.
    worker.alerter.check()
    worker.alerter.send_due()
    assert sorted(p["json"]["key"] for p in receiver.posts) == ["dead:leads:auth",
                                                                "engati_auth"]
    assert store.alert_claim("x", time.time() + 3600, 60, 10) == []  # nothing left to send
