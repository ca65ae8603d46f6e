"""PostgresStore's own connection (relay/store/postgres.py): what test_contract.py cannot see
from outside the contract."""

from __future__ import annotations

import itertools
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg import pq

from relay.errors import StoreUnavailable
from relay.mapping import Fetch, Result
from relay.model import Attempt, Outcome
from relay.store import open_store
from relay.store import postgres as postgres_store
from tests.conftest import POSTGRES_URL, postgres_reason
from tests.unit.store.helpers import FAILED, LEASE, NOW, accept, planned, received

pytestmark = pytest.mark.skipif(postgres_reason() is not None, reason=str(postgres_reason()))


@pytest.fixture
def store():
    """A PostgresStore on RELAY_TEST_POSTGRES's database, emptied first."""
    store = open_store(POSTGRES_URL, timeout=0.5)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    store.upgrade()
    yield store
    store.dispose()


def backend_of(store) -> int:
    """The server process behind the store's own connection."""
    with store._direct() as db:
        pid = db.cursor().execute("SELECT pg_backend_pid()")
    return int(pid.fetchone()[0])


class TestOwnConnection:
    def test_postgresql_urls_open_the_direct_store(self, store):
        """open_store gives PostgreSQL's backend its psycopg hot paths."""
        assert type(store).__name__ == "PostgresStore"

    def test_a_dropped_connection_fails_one_transaction_then_connects_again(self, store):
        """A connection the server ended answers StoreUnavailable once; the next
        transaction runs on a new one."""
        accept(store, planned("a"))
        before = backend_of(store)
        with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (before,))
        with pytest.raises(StoreUnavailable):
            store.claim("w1", 10, NOW, LEASE)
        assert [c.phone for c in store.claim("w1", 10, NOW, LEASE)] == ["919812345600"]
        assert backend_of(store) != before

    def test_a_failed_transaction_is_rolled_back_and_the_connection_kept(self, store):
        """A statement the server refuses rolls its transaction back; the connection
        serves the next one."""
        before = backend_of(store)
        with pytest.raises(psycopg.errors.UndefinedTable), store._direct() as db:
            db.execute("INSERT INTO events_missing VALUES (1)")
        accept(store, planned("b"))
        assert len(store.claim("w1", 10, NOW, LEASE)) == 1
        assert backend_of(store) == before

    def test_a_worker_store_does_not_wait_for_the_disk(self, store):
        """worker=True: synchronous_commit off on its own connection and its pool's; the
        web's store keeps it on."""
        worker = open_store(POSTGRES_URL, worker=True)
        try:
            for each, expected in ((store, "on"), (worker, "off")):
                with each._direct() as db:
                    own = db.cursor().execute("SHOW synchronous_commit")
                with each.engine.connect() as conn:
                    pooled = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
                assert (own.fetchone()[0], pooled) == (expected, expected)
        finally:
            worker.dispose()


def round_trips(store, batch) -> tuple[list, int]:
    """write_batch's receipts, and how many times it waited for the server: the turns of
    the protocol from the client's messages to the server's, as libpq traces them."""
    accept(store, planned("warm-up"))  # connected before the trace starts
    db = store._own_connection()
    with tempfile.TemporaryFile("w+") as trace:
        db.pgconn.trace(trace.fileno())
        db.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            receipts = store.write_batch(batch, [])
        finally:
            db.pgconn.untrace()
        trace.seek(0)
        senders = [line.split("\t")[0] for line in trace if line.strip()]
    return receipts, list(itertools.pairwise(senders)).count(("F", "B"))


class TestRoundTrips:
    def test_a_usual_batch_is_stored_and_committed_in_two(self, store):
        """Events with their deliveries and lookups in one statement (ACCEPT), then the
        wake-up and the commit."""
        looked_up = Result(lookups=(Fetch("https://graph.example/1", "L1"),))
        receipts, waits = round_trips(store, [received(planned("a", "b")),
                                              received(Result(skipped="not a lead")),
                                              received(looked_up), received(planned("c"))])
        assert [(r.status, r.deliveries, r.lookups) for r in receipts] == [
            ("accepted", 2, 0), ("skipped", 0, 0), ("accepted", 0, 1), ("accepted", 1, 0)]
        assert waits == 2

    def test_a_keyed_event_costs_two_more(self, store):
        """A failed event with a key of its own is stored apart (INSERT_KEYED), and the
        batch's deliveries after its events: a round trip more each."""
        receipts, waits = round_trips(store, [received(planned("a")),
                                              received(Result(errors=FAILED.errors, key="K"))])
        assert [r.status for r in receipts] == ["accepted", "failed"]
        assert waits == 4


def test_a_record_looks_its_deliveries_up_by_id_whatever_the_backlog(store):
    """RECORD's plan finds each delivery by its key: without the ids as an array, the planner
    (taking jsonb_to_recordset for 100 rows) joined them to every pending delivery, a scan of
    the whole backlog for each outcome recorded."""
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO events (mapping, received_at, status, body, headers, query) "
            "VALUES ('m', 0, 'accepted', 'x', '{}', '{}')")
        conn.exec_driver_sql(
            "INSERT INTO deliveries (event_id, mapping, flow_key, channel, phone, attributes, "
            "status, attempts, next_at, created_at, updated_at) SELECT 1, 'm', 'F', 'whatsapp', "
            "'91', '{}', 'pending', 0, 0, 0, 0 FROM generate_series(1, 3000)")
        conn.exec_driver_sql("ANALYZE deliveries")
    rows = postgres_store.record_rows(
        [(0, Attempt(7, NOW, 5, Outcome.DELIVERED, 200))], NOW)
    db = store._own_connection()
    plan = "\n".join(row[0] for row in db.execute(
        "EXPLAIN " + postgres_store.RECORD, {"rows": rows, "ids": [7], "worker": "w",
                                             "now": NOW}))
    assert "deliveries_pkey" in plan and "deliveries_due" not in plan, plan


class TestRecordRacing:
    """record_many's outcome, its delivery changed by another transaction that commits while
    the outcome's UPDATE waits for the row: READ COMMITTED checks the conditions again on
    the row as committed (the lease check is in the statement, not read before it)."""

    @pytest.mark.parametrize(("change", "outcome", "kept", "expected"), [
        ("leased_by = 'w2'", Outcome.RETRY, False, ("pending", 0, "w2")),
        ("leased_by = 'w2'", Outcome.DELIVERED, True, ("delivered", 1, None)),
        ("status = 'cancelled'", Outcome.DELIVERED, False, ("cancelled", 0, "w1")),
        ("status = 'delivered', attempts = 1, leased_by = NULL", Outcome.RETRY, False,
         ("delivered", 1, None))],
        ids=["taken-over-retry", "taken-over-success", "cancelled", "delivered-meanwhile"])
    def test_an_outcome_is_judged_on_the_row_as_committed(self, store, change, outcome,
                                                          kept, expected):
        """A retry whose lease is taken over meanwhile is refused and a success still
        counts; a delivery cancelled or delivered meanwhile is left as it is."""
        receipt = accept(store, planned("a"))
        (claimed,) = store.claim("w1", 10, NOW, LEASE)
        recorder = backend_of(store)
        url = POSTGRES_URL.replace("+psycopg", "")
        with psycopg.connect(url) as other, psycopg.connect(url, autocommit=True) as watch, \
                ThreadPoolExecutor(1) as pool:
            other.execute(f"UPDATE deliveries SET {change} WHERE id = %s", (claimed.id,))
            result = pool.submit(store.record_many, [Attempt(
                claimed.id, NOW, 5, outcome, 200 if outcome == Outcome.DELIVERED else 503,
                next_at=NOW + 99 if outcome == Outcome.RETRY else None)], "w1", NOW + 1)
            deadline = time.monotonic() + 10
            while watch.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                (recorder,)).fetchone() != ("Lock",):
                assert time.monotonic() < deadline, "the outcome never waited for the row"
                assert not result.done(), result.result()
                time.sleep(0.01)
            other.commit()
            assert result.result(timeout=10) == [kept]
        (delivery,) = store.event(receipt.event_id)["deliveries"]
        assert (delivery["status"], delivery["attempts"], delivery["leased_by"]) == expected
        assert len(delivery["attempt_log"]) == 1
