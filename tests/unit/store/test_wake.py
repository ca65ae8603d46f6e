"""Waking workers (relay/store/wake.py): which writes announce new work on PostgreSQL, and a
listener that outlives its connection. SQLite and the fake store have no waiter."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import sqlalchemy as sa

from relay.mapping import Delivery, Result
from relay.mapping.model import Cancellation
from relay.model import Received
from relay.store import SqliteStore
from relay.store.wake import Listener
from tests.conftest import POSTGRES_URL
from tests.support.fake_store import FakeStore

NOW = 1_700_000_000.0
QUIET = 0.3  # seconds a listener is given to hear what it must not hear
DEADLINE = 10.0
postgres = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def webhook(*deliveries: Delivery, cancels: tuple[Cancellation, ...] = (),
            now: float = NOW) -> Received:
    return Received("leads", b"{}", {}, {}, Result(deliveries, cancels=cancels), now)


def delivery(item: int = 0, **fields) -> Delivery:
    return Delivery("F", "whatsapp", "919812345678", {"i": item}, None, item, **fields)


def listening(store, scenario):
    """Run `scenario(listener)` with a listener on `store` that has connected (its first
    wait, which reports what it may have missed, already taken)."""
    async def run():
        listener = store.waiter()
        try:
            assert await listener.wait(DEADLINE), "the listener did not connect"
            await scenario(listener)
        finally:
            await listener.close()

    asyncio.run(asyncio.wait_for(run(), 4 * DEADLINE))


def test_sqlite_and_the_fake_store_have_no_waiter(tmp_path):
    """Backends without notifications give no waiter: their workers poll."""
    store = SqliteStore(f"sqlite:///{tmp_path / 'relay.db'}")
    try:
        assert store.waiter() is None
    finally:
        store.dispose()
    assert FakeStore().waiter() is None


@postgres
class TestAnnounced:
    """On PostgreSQL, a transaction that makes a delivery due now wakes the listeners."""

    def test_a_webhook_due_now_is_announced(self, store):
        """Accepting a webhook with a delivery due now wakes a waiting listener; nothing
        wakes it before."""
        async def scenario(listener):
            assert not await listener.wait(QUIET)
            await asyncio.to_thread(store.accept, webhook(delivery()))
            assert await listener.wait(DEADLINE)

        listening(store, scenario)

    def test_scheduled_deliveries_and_cancellations_are_not(self, store):
        """A delivery scheduled for later, or a webhook that only cancels, leaves nothing
        to claim now: no notification."""
        async def scenario(listener):
            later = delivery(send_at=time.time() + 3600, why="delay 1h")
            await asyncio.to_thread(store.accept, webhook(later, now=time.time()))
            await asyncio.to_thread(store.accept, webhook(
                cancels=(Cancellation("k", (), 60.0),)))
            assert not await listener.wait(QUIET)

        listening(store, scenario)

    def test_send_now_and_replay_are_announced(self, store):
        """An operator's send-now and a replay that queues deliveries wake the listener."""
        later = delivery(send_at=NOW + 3600, why="delay 1h")
        event_id = store.accept(webhook(later)).event_id
        (scheduled,) = store.event(event_id)["deliveries"]

        async def scenario(listener):
            assert await asyncio.to_thread(store.send_now, scheduled["id"], NOW)
            assert await listener.wait(DEADLINE)
            assert len(await asyncio.to_thread(store.claim, "w1", 10, NOW, 60)) == 1
            assert not await listener.wait(QUIET)
            await asyncio.to_thread(store.replay, event_id, Result((delivery(1),)), NOW)
            assert await listener.wait(DEADLINE)

        listening(store, scenario)


@postgres
def test_a_listener_outlives_its_connection(store, caplog):
    """When its connection is killed, the listener says so, connects again, wakes its
    worker once (what was accepted meanwhile was announced to nobody), and hears new work
    again."""
    killer = sa.create_engine(POSTGRES_URL)

    async def scenario(listener):
        first = listener.backend_pid
        with killer.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"),
                                {"pid": first}).scalar()
        assert await listener.wait(DEADLINE), "no wake after connecting again"
        assert listener.backend_pid not in (None, first)
        assert not await listener.wait(QUIET)
        await asyncio.to_thread(store.accept, webhook(delivery()))
        assert await listener.wait(DEADLINE)

    try:
        with caplog.at_level(logging.INFO, logger="relay.worker"):
            listening(store, scenario)
    finally:
        killer.dispose()
    said = [r.getMessage() for r in caplog.records]
    assert any(r.levelno == logging.WARNING and "not listening for new work" in r.getMessage()
               for r in caplog.records), said
    assert "listening for new work again" in said


def test_a_listener_without_a_server_only_times_out(caplog):
    """With no server to listen on, waiting times out (the worker polls) and says why."""
    async def scenario():
        listener = Listener("postgresql+psycopg://nobody@127.0.0.1:1/none", retry=0.05)
        try:
            assert not await listener.wait(QUIET)
        finally:
            await listener.close()

    with caplog.at_level(logging.WARNING, logger="relay.worker"):
        asyncio.run(scenario())
    assert any("not listening for new work" in r.getMessage() for r in caplog.records)


@postgres
def test_a_quiet_listener_checks_its_connection_and_keeps_it(store, caplog):
    """Quiet for `ping` seconds, the listener checks its connection with a query (a
    dropped network would otherwise keep it waiting for ever), and keeps listening on it."""
    async def scenario():
        listener = Listener(POSTGRES_URL, ping=0.05)
        try:
            assert await listener.wait(DEADLINE)
            first = listener.backend_pid
            for _ in range(5):  # each ping wakes the worker once, in case
                assert await listener.wait(DEADLINE)
            assert listener.backend_pid == first
        finally:
            await listener.close()

    with caplog.at_level(logging.WARNING, logger="relay.worker"):
        asyncio.run(asyncio.wait_for(scenario(), 4 * DEADLINE))
    assert not caplog.records
