"""The store contract, on SQLite always and on PostgreSQL when a server answers."""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from relay.errors import FieldError, StoreUnavailable
from relay.mapping import Delivery, Result
from relay.model import Attempt, Receipt
from relay.store import Store
from relay.store.group_commit import GroupCommit

NOW = 1_700_000_000.0
LEASE = 60.0


def planned(*keys, item=False):
    """A mapping result with one delivery per dedup key."""
    return Result(tuple(
        Delivery("FLOW", "whatsapp", f"9198123456{i:02d}", {"n": i}, key, i if item else None)
        for i, key in enumerate(keys)))


def accept(store, result, mapping="leads", now=NOW, body=b'{"a": 1}'):
    return store.accept(mapping, body, {"content-type": "application/json"}, {}, result, now)


FAILED = Result(errors=(FieldError("phone", "no value at body.phone"),))


class TestAccept:
    def test_event_and_deliveries_are_stored(self, store):
        """An accepted event keeps its raw body byte-exact, and its deliveries wait."""
        body = b'{"name": "Asha",  "x": "\\u00e9"}\n'
        receipt = accept(store, planned("k1"), body=body)
        assert (receipt.status, receipt.deliveries) == ("accepted", 1)
        event = store.event(receipt.event_id)
        assert event["body"] == body
        assert event["headers"] == {"content-type": "application/json"}
        (delivery,) = event["deliveries"]
        assert (delivery["status"], delivery["phone"], delivery["attributes"]) == (
            "pending", "919812345600", {"n": 0})

    def test_duplicate_key_is_not_stored_twice(self, store):
        """The same dedup key again answers duplicate with the first event's id."""
        first = accept(store, planned("k1"))
        again = accept(store, planned("k1"))
        assert (again.status, again.event_id) == ("duplicate", first.event_id)
        assert len(store.events()) == 1

    def test_keys_are_per_mapping(self, store):
        """Two mappings may use the same key."""
        accept(store, planned("k1"), mapping="a")
        assert accept(store, planned("k1"), mapping="b").status == "accepted"

    def test_batch_with_some_duplicates_stores_only_the_new(self, store):
        """A batch whose items were partly accepted before queues only the new ones."""
        accept(store, planned("k1", item=True))
        receipt = accept(store, planned("k1", "k2", item=True))
        assert (receipt.status, receipt.deliveries) == ("accepted", 1)

    def test_no_key_means_no_deduplication(self, store):
        """Without a dedup key every post is a new event."""
        accept(store, planned(None))
        assert accept(store, planned(None)).status == "accepted"

    def test_failed_event_is_stored_and_a_retry_is_mapped_again(self, store):
        """A 422 event is kept for replay; the sender's retry is a new event, not a duplicate."""
        first = accept(store, FAILED)
        second = accept(store, FAILED)
        assert (first.status, second.status) == ("failed", "failed")
        assert second.event_id != first.event_id
        assert store.event(first.event_id)["errors"] == [
            {"field": "phone", "message": "no value at body.phone"}]

    def test_skipped_event_is_recorded(self, store):
        """A skipped event is stored with the reason."""
        receipt = accept(store, Result(skipped="filter"))
        assert receipt.status == "skipped"
        assert store.event(receipt.event_id)["note"] == "filter"


class TestClaims:
    def test_claim_leases_due_deliveries_once(self, store):
        """A claimed delivery is not handed to a second worker while the lease runs."""
        accept(store, planned("a", "b", item=True))
        first = store.claim("w1", 10, NOW, LEASE)
        assert [c.phone for c in first] == ["919812345600", "919812345601"]
        assert store.claim("w2", 10, NOW + 1, LEASE) == []

    def test_expired_lease_is_taken_over(self, store):
        """A crashed worker's claims go to another worker when the lease runs out."""
        accept(store, planned("a"))
        store.claim("w1", 10, NOW, LEASE)
        taken = store.claim("w2", 10, NOW + LEASE + 1, LEASE)
        assert len(taken) == 1

    def test_limit_and_due_time(self, store):
        """Claims take at most `limit`, and nothing before its next attempt time."""
        accept(store, planned("a", "b", "c", item=True))
        assert len(store.claim("w1", 2, NOW, LEASE)) == 2
        assert store.claim("w1", 10, NOW - 1, LEASE) == []

    def test_release_makes_a_claim_available_again(self, store):
        """A worker shutting down gives its claims back untried."""
        accept(store, planned("a"))
        (claimed,) = store.claim("w1", 10, NOW, LEASE)
        store.release([claimed.id], "w1")
        (again,) = store.claim("w2", 10, NOW, LEASE)
        assert again.attempts == 0


class TestRecord:
    def test_delivered(self, store):
        """A success is final, with its attempt recorded."""
        receipt = accept(store, planned("a"))
        (claimed,) = store.claim("w1", 10, NOW, LEASE)
        assert store.record_many([Attempt(claimed.id, NOW, 12.5, "delivered", 200, 1000)],
                                 "w1", NOW + 1)[0]
        (delivery,) = store.event(receipt.event_id)["deliveries"]
        assert (delivery["status"], delivery["attempts"]) == ("delivered", 1)
        assert delivery["attempt_log"][0]["engati_code"] == 1000
        assert store.claim("w1", 10, NOW + 999, LEASE) == []

    def test_retry_waits_until_next_attempt(self, store):
        """A retry is claimable again only from its next attempt time."""
        accept(store, planned("a"))
        (claimed,) = store.claim("w1", 10, NOW, LEASE)
        store.record_many([Attempt(claimed.id, NOW, 5, "retry", 503, None, "HTTP 503",
                                   next_at=NOW + 30)], "w1", NOW + 1)
        assert store.claim("w1", 10, NOW + 29, LEASE) == []
        (again,) = store.claim("w1", 10, NOW + 30, LEASE)
        assert again.attempts == 1

    def test_lost_lease_does_not_overwrite(self, store):
        """A worker whose lease was taken over cannot reschedule; a success still counts."""
        receipt = accept(store, planned("a"))
        (old,) = store.claim("w1", 10, NOW, LEASE)
        store.claim("w2", 10, NOW + LEASE + 1, LEASE)
        assert not store.record_many([Attempt(old.id, NOW, 5, "retry", 503, next_at=NOW + 999)],
                                     "w1", NOW + 61)[0]
        assert store.record_many([Attempt(old.id, NOW, 5, "delivered", 200)], "w1", NOW + 62)[0]
        assert store.event(receipt.event_id)["deliveries"][0]["status"] == "delivered"


class TestOperators:
    def test_events_filters(self, store):
        """Events list by derived state: pending, delivered, dead, failed, skipped."""
        dead = accept(store, planned("d")).event_id
        delivered = accept(store, planned("ok")).event_id
        pending = accept(store, planned("p")).event_id
        failed = accept(store, FAILED).event_id
        for claimed in store.claim("w", 2, NOW, LEASE):
            outcome = "dead" if claimed.event_id == dead else "delivered"
            store.record_many([Attempt(claimed.id, NOW, 1, outcome, 400)], "w", NOW)[0]
        ids = {s: [e["id"] for e in store.events(status=s)]
               for s in ("dead", "delivered", "pending", "failed", "accepted")}
        assert ids["dead"] == [dead]
        assert ids["delivered"] == [delivered]
        assert ids["pending"] == [pending]
        assert ids["failed"] == [failed]
        assert ids["accepted"] == [pending, delivered, dead]
        assert store.replayable(dead=True, failed=True, mapping=None, since=None) == [dead, failed]
        assert store.replayable(dead=True, failed=False, mapping="other", since=None) == []

    def test_replay_requeues_dead_but_never_delivered(self, store):
        """Replay queues a dead delivery again and leaves a delivered one alone."""
        event_id = accept(store, planned("a", "b", item=True)).event_id
        first, second = store.claim("w", 10, NOW, LEASE)
        store.record_many([Attempt(first.id, NOW, 1, "delivered", 200)], "w", NOW)[0]
        store.record_many([Attempt(second.id, NOW, 1, "dead", 400)], "w", NOW)[0]
        counts = store.replay(event_id, planned("a", "b", item=True), NOW + 100)
        assert counts == {"queued": 1, "already_delivered": 1}
        (again,) = store.claim("w", 10, NOW + 100, LEASE)
        assert (again.id, again.attempts) == (second.id, 0)

    def test_replay_of_a_failed_event_plans_its_deliveries(self, store):
        """Once the mapping is fixed, a failed event gets its deliveries."""
        event_id = accept(store, FAILED).event_id
        assert store.replay(event_id, planned("a"), NOW)["queued"] == 1
        event = store.event(event_id)
        assert (event["status"], event["errors"], len(event["deliveries"])) == (
            "accepted", None, 1)


def test_locked_sqlite_is_unavailable_not_an_error(tmp_path):
    """When SQLite stays locked past the timeout, the write fails as StoreUnavailable."""
    path = tmp_path / "relay.db"
    store = Store(f"sqlite:///{path}", timeout=0.2)
    store.upgrade()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable, match="database is locked"):
            accept(store, planned("a"))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert accept(store, planned("a")).status == "accepted"


class TestPurge:
    def test_purges_finished_events_and_keeps_pending_and_recent(self, store):
        """Old finished events go with their attempts; pending and recent ones stay."""
        old_done = accept(store, planned("a"), now=NOW).event_id
        old_failed = accept(store, FAILED, now=NOW).event_id
        old_pending = accept(store, planned("b"), now=NOW).event_id
        recent = accept(store, planned("c"), now=NOW + 1000).event_id
        claimed = {c.event_id: c for c in store.claim("w", 10, NOW + 2000, LEASE)}
        for event_id in (old_done, recent):
            store.record_many([Attempt(claimed[event_id].id, NOW, 1, "delivered", 200)],
                              "w", NOW)[0]
        assert store.purge(NOW + 500, dry_run=True) == 1
        assert store.purge(NOW + 500, batch=1) == 1
        assert store.event(old_done) is None
        assert store.event(old_failed) is not None  # awaiting a replay
        assert store.event(old_pending)["deliveries"][0]["status"] == "pending"
        assert store.event(recent) is not None
        assert store.purge(NOW + 500) == 0
        assert store.purge(NOW + 500, include_failed=True) == 1
        assert store.event(old_failed) is None

    def test_refusals_are_counted_in_a_row_per_mapping_minute_and_kind(self, store):
        """Thousands of refusals make a handful of rows, each with its count and a sample;
        the values a forgery puts in its reason do not make new kinds."""
        for i in range(3000):
            store.refuse("leads", f"malformed timestamp '{i}'", NOW + i / 100)
            store.refuse("leads", "typeform-signature does not match", NOW + i / 100)
        store.flush(NOW + 30)
        rows = [f for f in store.failures() if f["kind"] == "refused"]
        assert sum(r["count"] for r in rows) == 6000
        assert len(rows) <= 4  # two kinds, in at most two minutes
        assert {r["reason"] for r in rows} >= {"malformed timestamp '0'",
                                                "typeform-signature does not match"}
        assert store.prune_refusals(NOW + 100) == len(rows)


class TestPacing:
    def test_slots_are_spaced_by_the_interval(self, store):
        """Each reservation gets the next free slot, `interval` after the previous one."""
        slots = [store.reserve("1/bot", 0.5, NOW, 10) for _ in range(3)]
        assert slots == [(NOW, True), (NOW + 0.5, True), (NOW + 1.0, True)]
        assert store.reserve("2/other", 0.5, NOW, 10) == (NOW, True)

    def test_far_slots_are_reported_not_taken(self, store):
        """A slot beyond the horizon is returned without moving the bot's next slot."""
        store.reserve("1/bot", 5, NOW, 10)
        store.reserve("1/bot", 5, NOW, 10)
        store.reserve("1/bot", 5, NOW, 10)
        assert store.reserve("1/bot", 5, NOW, 10) == (NOW + 15, False)
        assert store.reserve("1/bot", 5, NOW + 5, 10) == (NOW + 15, True)

    def test_pause_holds_every_slot(self, store):
        """A pause (429 Retry-After) moves the bot's next slot to its end; it only grows."""
        store.pause("1/bot", NOW + 30)
        store.pause("1/bot", NOW + 5)
        assert store.pauses(NOW) == {"1/bot": NOW + 30}
        assert store.reserve("1/bot", 0.1, NOW, 60) == (NOW + 30, True)
        assert store.pauses(NOW + 31) == {}


class TestConcurrentWriters:
    def test_concurrent_accepts_share_commits_and_each_gets_its_own_receipt(self, store):
        """Webhooks accepted from many threads at once: each answered with its own event,
        duplicates among them found, every one stored."""
        keys = [f"k{i}" for i in range(60)] + ["k1", "k2"]  # two repeats
        with ThreadPoolExecutor(16) as pool:
            receipts = list(pool.map(lambda key: accept(store, planned(key)), keys))
        accepted = [r for r in receipts if r.status == "accepted"]
        assert len(accepted) == 60
        assert len({r.event_id for r in accepted}) == 60
        assert sorted(r.status for r in receipts).count("duplicate") == 2
        assert len(store.events(limit=100)) == 60

    def test_processes_queue_for_sqlite_instead_of_timing_out(self, tmp_path):
        """Four stores on one SQLite file (as four processes have) writing flat out, with a
        busy timeout of 5 ms: none of them is refused, because they queue for the lock
        rather than poll for it."""
        url = f"sqlite:///{tmp_path / 'relay.db'}"
        stores = [Store(url, timeout=0.005) for _ in range(4)]
        stores[0].upgrade()

        def write(n):
            return accept(stores[n % 4], planned(f"k{n}"), body=b"x" * 2000).status

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(write, range(400))) == {"accepted"}
        assert len(stores[1].events(limit=500)) == 400
        for each in stores:
            each.dispose()


class TestGroupCommit:
    def test_waiting_items_are_written_together(self):
        """While one batch is written, those arriving wait and go in the next, together;
        each caller gets its own result."""
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

    def test_a_failed_write_fails_each_of_its_items_and_the_next_batch_goes_on(self):
        calls = iter([StoreUnavailable("database is locked")])

        def write(items):
            if error := next(calls, None):
                raise error
            return items

        group = GroupCommit(write)
        with pytest.raises(StoreUnavailable):
            group.submit(1)
        assert group.submit(2) == 2


def test_a_worker_store_commits_without_waiting_for_the_disk(tmp_path):
    """SQLite: the web's commits are synced before a sender hears 2xx; the worker's are not
    (a lost lease or outcome only repeats a call), and the worker checkpoints the log."""
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    web, worker = Store(url), Store(url, worker=True)
    web.upgrade()
    accept(web, planned("k1"))
    pragmas = {}
    for name, store in (("web", web), ("worker", worker)):
        with store.engine.connect() as conn:
            pragmas[name] = [conn.exec_driver_sql(f"PRAGMA {p}").scalar()
                             for p in ("synchronous", "wal_autocheckpoint")]
    assert pragmas == {"web": [2, 16000], "worker": [1, 1000]}  # 2 FULL, 1 NORMAL
    database = tmp_path / "relay.db"
    before = database.stat().st_size  # everything so far is in the log, none in the file
    worker.checkpoint()
    assert database.stat().st_size > before
    for store in (web, worker):
        store.dispose()


def test_one_batch_with_repeats_inside_it_and_of_earlier_events(store):
    """Webhooks that share a transaction: a repeat within the batch and a repeat of an
    earlier event are duplicates of their first; a skipped one stores no delivery."""
    earlier = accept(store, planned("old"))
    item = ("leads", b"{}", {}, {})
    receipts = store._accept_many([
        (*item, planned("a"), NOW), (*item, planned("a"), NOW), (*item, planned("old"), NOW),
        (*item, Result(skipped="not a lead"), NOW), (*item, planned("b", "old", item=True), NOW)])
    first = receipts[0].event_id
    assert [(r.status, r.deliveries) for r in receipts] == [
        ("accepted", 1), ("duplicate", 0), ("duplicate", 0), ("skipped", 0), ("accepted", 1)]
    assert (receipts[1].event_id, receipts[2].event_id) == (first, earlier.event_id)
    assert len(store.events()) == 4  # earlier, a, the skipped one, b


def test_a_webhook_the_database_refuses_fails_alone(store):
    """One webhook of a batch that cannot be written (here: headers that are no JSON) gets
    its error; the others of its transaction are written and answered as usual."""
    item = ("leads", b"{}", {}, {})
    receipts = store._accept_many([
        (*item, planned("a"), NOW), ("leads", b"{}", {"x": {1, 2}}, {}, planned("b"), NOW),
        (*item, planned("c"), NOW)])
    assert isinstance(receipts[1], Exception)
    assert [(r.status, r.deliveries) for r in (receipts[0], receipts[2])] == [
        ("accepted", 1), ("accepted", 1)]
    assert {e["id"] for e in store.events()} == {receipts[0].event_id, receipts[2].event_id}


class TestEventKeys:
    def test_failed_and_skipped_events_are_stored_once_per_key(self, store):
        """A resend of a failed or skipped webhook is a duplicate of the first; a replay
        that changes an event's status gives its key up rather than clash with another."""
        failed = Result(errors=FAILED.errors, key="K")
        skipped = Result(skipped="filter", key="K")
        first = accept(store, failed)
        assert accept(store, failed) == Receipt("duplicate", first.event_id, 0)
        other = accept(store, skipped)
        assert other.status == "skipped" and other.event_id != first.event_id
        store.replay(first.event_id, skipped, NOW + 1)  # now skipped too: no clash
        assert store.event(first.event_id)["status"] == "skipped"
        assert accept(store, skipped).event_id == other.event_id
