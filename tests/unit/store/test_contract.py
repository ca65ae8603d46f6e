"""The store contract (relay/store/base.py): the inbound and worker paths, on SQLite always,
on PostgreSQL when a server answers, and (the `any_store` tests) on the in-memory fake of
tests/support/fake_store.py. The history's reads and upkeep: test_history.py, test_replay.py.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from relay.errors import StoreUnavailable
from relay.mapping import Result
from relay.model import Attempt, FailureKind, Outcome, Receipt
from relay.store import SqliteStore, open_store
from relay.store import sqlite as sqlite_store
from tests.unit.store.helpers import FAILED, LEASE, NOW, accept, everywhere, planned, received


@everywhere
class TestAccept:
    def test_event_and_deliveries_are_stored(self, any_store):
        """An accepted event keeps its raw body byte-exact, and its deliveries wait."""
        body = b'{"name": "Asha",  "x": "\\u00e9"}\n'
        receipt = accept(any_store, planned("k1"), body=body)
        assert (receipt.status, receipt.deliveries) == ("accepted", 1)
        event = any_store.event(receipt.event_id)
        assert event["body"] == body
        assert event["headers"] == {"content-type": "application/json"}
        (delivery,) = event["deliveries"]
        assert (delivery["status"], delivery["phone"], delivery["attributes"]) == (
            "pending", "919812345600", {"n": 0})

    def test_duplicate_key_is_not_stored_twice(self, any_store):
        """The same dedup key again answers duplicate with the first event's id."""
        first = accept(any_store, planned("k1"))
        again = accept(any_store, planned("k1"))
        assert (again.status, again.event_id) == ("duplicate", first.event_id)
        assert len(any_store.events()) == 1

    def test_keys_are_per_mapping(self, any_store):
        """Two mappings may use the same key."""
        accept(any_store, planned("k1"), mapping="a")
        assert accept(any_store, planned("k1"), mapping="b").status == "accepted"

    def test_batch_with_some_duplicates_stores_only_the_new(self, any_store):
        """A batch whose items were partly accepted before queues only the new ones."""
        accept(any_store, planned("k1", item=True))
        receipt = accept(any_store, planned("k1", "k2", item=True))
        assert (receipt.status, receipt.deliveries) == ("accepted", 1)

    def test_no_key_means_no_deduplication(self, any_store):
        """Without a dedup key every post is a new event."""
        accept(any_store, planned(None))
        assert accept(any_store, planned(None)).status == "accepted"

    def test_failed_event_is_stored_and_a_retry_is_mapped_again(self, any_store):
        """A 422 event is kept for replay; the sender's retry is a new event, not a duplicate."""
        first = accept(any_store, FAILED)
        second = accept(any_store, FAILED)
        assert (first.status, second.status) == ("failed", "failed")
        assert second.event_id != first.event_id
        assert any_store.event(first.event_id)["errors"] == [
            {"field": "phone", "message": "no value at body.phone"}]

    def test_skipped_event_is_recorded(self, any_store):
        """A skipped event is stored with the reason."""
        receipt = accept(any_store, Result(skipped="filter"))
        assert receipt.status == "skipped"
        assert any_store.event(receipt.event_id)["note"] == "filter"

    def test_failed_and_skipped_events_are_stored_once_per_key(self, any_store):
        """A resend of a failed or skipped webhook is a duplicate of the first of its
        status; the same key under another status is another event."""
        first = accept(any_store, Result(errors=FAILED.errors, key="K"))
        assert accept(any_store, Result(errors=FAILED.errors, key="K")) == Receipt(
            "duplicate", first.event_id, 0)
        other = accept(any_store, Result(skipped="filter", key="K"))
        assert other.status == "skipped" and other.event_id != first.event_id


class TestBatches:
    """Webhooks that share a transaction (SqlStore.write_batch, which GroupCommit calls with
    what concurrent requests handed in)."""

    def test_repeats_inside_a_batch_and_of_earlier_events(self, store):
        """A repeat within the batch and a repeat of an earlier event are duplicates of
        their first; a skipped one stores no delivery."""
        earlier = accept(store, planned("old"))
        receipts = store.write_batch([
            received(planned("a")), received(planned("a")), received(planned("old")),
            received(Result(skipped="not a lead")), received(planned("b", "old", item=True))],
            [])
        first = receipts[0].event_id
        assert [(r.status, r.deliveries) for r in receipts] == [
            ("accepted", 1), ("duplicate", 0), ("duplicate", 0), ("skipped", 0),
            ("accepted", 1)]
        assert (receipts[1].event_id, receipts[2].event_id) == (first, earlier.event_id)
        assert len(store.events()) == 4  # earlier, a, the skipped one, b

    def test_a_webhook_the_database_refuses_fails_alone(self, store):
        """One webhook that cannot be written (here: headers that are no JSON) gets its
        error; the others, written while it waited or with it, are answered as usual."""
        def write(n):
            bad = {"x": {1, 2}} if n == 3 else None
            try:
                return store.accept(received(planned(f"k{n}"), headers=bad))
            except TypeError as exc:
                return exc

        with ThreadPoolExecutor(8) as pool:
            receipts = list(pool.map(write, range(8)))
        assert isinstance(receipts[3], TypeError)
        good = [r for n, r in enumerate(receipts) if n != 3]
        assert {(r.status, r.deliveries) for r in good} == {("accepted", 1)}
        assert {e["id"] for e in store.events()} == {r.event_id for r in good}

    def test_concurrent_accepts_share_commits_and_each_gets_its_own_receipt(self, store):
        """Webhooks accepted from many threads at once: each answered with its own event,
        duplicates among them found, every one stored."""
        keys = [f"k{i}" for i in range(60)] + ["k1", "k2"]  # two repeats
        with ThreadPoolExecutor(16) as pool:
            receipts = list(pool.map(lambda key: accept(store, planned(key)), keys))
        accepted = [r for r in receipts if r.status == "accepted"]
        assert len(accepted) == 60
        assert len({r.event_id for r in accepted}) == 60
        assert [r.status for r in receipts].count("duplicate") == 2
        assert len(store.events(limit=100)) == 60


@everywhere
class TestClaims:
    def test_claim_leases_due_deliveries_once(self, any_store):
        """A claimed delivery is not handed to a second worker while the lease runs."""
        accept(any_store, planned("a", "b", item=True))
        first = any_store.claim("w1", 10, NOW, LEASE)
        assert [c.phone for c in first] == ["919812345600", "919812345601"]
        assert [c.attributes for c in first] == [{"n": 0}, {"n": 1}]
        assert all(c.lease_until == NOW + LEASE for c in first)
        assert any_store.claim("w2", 10, NOW + 1, LEASE) == []

    def test_expired_lease_is_taken_over(self, any_store):
        """A crashed worker's claims go to another worker when the lease runs out."""
        accept(any_store, planned("a"))
        any_store.claim("w1", 10, NOW, LEASE)
        assert len(any_store.claim("w2", 10, NOW + LEASE + 1, LEASE)) == 1

    def test_limit_and_due_time(self, any_store):
        """Claims take at most `limit`, and nothing before its next attempt time."""
        accept(any_store, planned("a", "b", "c", item=True))
        assert len(any_store.claim("w1", 2, NOW, LEASE)) == 2
        assert any_store.claim("w1", 10, NOW - 1, LEASE) == []

    def test_release_makes_a_claim_available_again(self, any_store):
        """A worker shutting down gives its claims back untried."""
        accept(any_store, planned("a"))
        (claimed,) = any_store.claim("w1", 10, NOW, LEASE)
        any_store.release([claimed.id], "w1")
        (again,) = any_store.claim("w2", 10, NOW, LEASE)
        assert again.attempts == 0

    def test_defer_gives_a_claim_back_for_later(self, any_store):
        """A deferred delivery (its bot paced or paused) is due again at the time given,
        untried, and only its own worker may defer it."""
        accept(any_store, planned("a"))
        (claimed,) = any_store.claim("w1", 10, NOW, LEASE)
        any_store.defer(claimed, "w2", NOW + 5, NOW)  # not its lease: nothing changes
        assert any_store.claim("w1", 10, NOW + 1, LEASE) == []
        any_store.defer(claimed, "w1", NOW + 5, NOW)
        assert any_store.claim("w1", 10, NOW + 4, LEASE) == []
        (again,) = any_store.claim("w1", 10, NOW + 5, LEASE)
        assert again.attempts == 0


@everywhere
class TestRecord:
    def test_delivered(self, any_store):
        """A success is final, with its attempt recorded."""
        receipt = accept(any_store, planned("a"))
        (claimed,) = any_store.claim("w1", 10, NOW, LEASE)
        assert any_store.record_many(
            [Attempt(claimed.id, NOW, 12.5, Outcome.DELIVERED, 200, 1000)], "w1", NOW + 1)[0]
        (delivery,) = any_store.event(receipt.event_id)["deliveries"]
        assert (delivery["status"], delivery["attempts"]) == ("delivered", 1)
        assert delivery["attempt_log"][0]["engati_code"] == 1000
        assert delivery["attempt_log"][0]["worker"] == "w1"
        assert any_store.claim("w1", 10, NOW + 999, LEASE) == []

    def test_retry_waits_until_next_attempt(self, any_store):
        """A retry is claimable again only from its next attempt time."""
        accept(any_store, planned("a"))
        (claimed,) = any_store.claim("w1", 10, NOW, LEASE)
        any_store.record_many([Attempt(claimed.id, NOW, 5, Outcome.RETRY, 503, None, "HTTP 503",
                                       FailureKind.SERVER, next_at=NOW + 30)], "w1", NOW + 1)
        assert any_store.claim("w1", 10, NOW + 29, LEASE) == []
        (again,) = any_store.claim("w1", 10, NOW + 30, LEASE)
        assert again.attempts == 1

    def test_the_failure_kind_is_stored_with_the_attempt_and_its_delivery(self, any_store):
        """The kind of a failed attempt is kept on the attempt and on its delivery (what the
        failures inbox groups by); a success clears the delivery's."""
        receipt = accept(any_store, planned("a"))
        (claimed,) = any_store.claim("w1", 10, NOW, LEASE)
        any_store.record_many([Attempt(claimed.id, NOW, 5, Outcome.RETRY, 429, None,
                                       "Engati answered HTTP 429", FailureKind.RATE_LIMITED,
                                       next_at=NOW + 1)], "w1", NOW)
        (delivery,) = any_store.event(receipt.event_id)["deliveries"]
        assert (delivery["failure"], delivery["attempt_log"][0]["failure"]) == (
            "rate_limited", "rate_limited")
        (claimed,) = any_store.claim("w1", 10, NOW + 1, LEASE)
        any_store.record_many([Attempt(claimed.id, NOW, 5, Outcome.DELIVERED, 200)], "w1", NOW)
        (delivery,) = any_store.event(receipt.event_id)["deliveries"]
        assert delivery["failure"] is None
        assert [a["failure"] for a in delivery["attempt_log"]] == ["rate_limited", None]

    def test_lost_lease_does_not_overwrite(self, any_store):
        """A worker whose lease was taken over cannot reschedule; a success still counts."""
        receipt = accept(any_store, planned("a"))
        (old,) = any_store.claim("w1", 10, NOW, LEASE)
        any_store.claim("w2", 10, NOW + LEASE + 1, LEASE)
        assert not any_store.record_many(
            [Attempt(old.id, NOW, 5, Outcome.RETRY, 503, next_at=NOW + 999)], "w1", NOW + 61)[0]
        assert any_store.record_many(
            [Attempt(old.id, NOW, 5, Outcome.DELIVERED, 200)], "w1", NOW + 62)[0]
        assert any_store.event(receipt.event_id)["deliveries"][0]["status"] == "delivered"

    def test_a_batch_keeps_each_outcome_on_its_own_terms(self, any_store):
        """In one batch: a retry under this worker's lease is kept, a retry whose lease
        another worker took is not, a second success of a delivered one is not; every
        attempt is stored."""
        receipt = accept(any_store, planned("a", "b", "c", item=True))
        mine, taken, done = any_store.claim("w1", 10, NOW, LEASE)
        any_store.record_many([Attempt(done.id, NOW, 5, Outcome.DELIVERED, 200)], "w1", NOW)
        any_store.release([taken.id], "w1")
        any_store.claim("w2", 10, NOW + 1, LEASE)
        kept = any_store.record_many([
            Attempt(done.id, NOW + 2, 5, Outcome.DELIVERED, 200),
            Attempt(mine.id, NOW + 2, 6, Outcome.RETRY, 503, next_at=NOW + 99),
            Attempt(taken.id, NOW + 2, 7, Outcome.RETRY, 503, next_at=NOW + 99)], "w1", NOW + 3)
        assert kept == [False, True, False]
        by_id = {d["id"]: d for d in any_store.event(receipt.event_id)["deliveries"]}
        assert [(by_id[d.id]["status"], by_id[d.id]["attempts"], len(by_id[d.id]["attempt_log"]))
                for d in (mine, taken, done)] == [("pending", 1, 1), ("pending", 0, 1),
                                                  ("delivered", 1, 2)]
        assert by_id[mine.id]["next_at"] == NOW + 99

    def test_what_an_answer_carried_never_fails_the_batch(self, any_store):
        """An error quoting Engati's text with a NUL or a lone surrogate (JSON's "\\u0000",
        "\\ud800"), and a status code no 32-bit column holds, are stored as well as they can
        be: refused, they failed the whole batch, whose calls were then made again."""
        receipt = accept(any_store, planned("a", "b", item=True))
        first, second = any_store.claim("w1", 10, NOW, LEASE)
        assert any_store.record_many([
            Attempt(first.id, NOW, 5, Outcome.DEAD, 400, 2**40, "status 2**40 x\x00y",
                    FailureKind.REJECTED),
            Attempt(second.id, NOW, 5, Outcome.DEAD, 200, 2003, "BOT \ud800 gone",
                    FailureKind.CODE)], "w1", NOW + 1) == [True, True]
        one, two = any_store.event(receipt.event_id)["deliveries"]
        assert [(d["status"], d["last_error"], d["attempt_log"][0]["error"],
                 d["attempt_log"][0]["engati_code"]) for d in (one, two)] == [
            ("dead", "status 2**40 x\ufffdy", "status 2**40 x\ufffdy", None),
            ("dead", "BOT ? gone", "BOT ? gone", 2003)]

    @pytest.mark.parametrize(("first", "then", "kept", "status", "attempts"), [
        (Outcome.RETRY, Outcome.DELIVERED, [True, True], "delivered", 2),
        (Outcome.DELIVERED, Outcome.RETRY, [True, False], "delivered", 1),
        (Outcome.RETRY, Outcome.RETRY, [True, False], "pending", 1)])
    def test_a_delivery_twice_in_a_batch_takes_its_outcomes_in_order(
            self, any_store, first, then, kept, status, attempts):
        """Two attempts at one delivery in one batch (its worker's lease ran out during a
        call and the worker claimed it again) are judged in order, each after the one
        before applied: a success is never undone, and a retry once the lease is spent
        counts no more than another worker's would."""
        receipt = accept(any_store, planned("a"))
        (claimed,) = any_store.claim("w1", 10, NOW, LEASE)
        assert any_store.record_many([
            Attempt(claimed.id, NOW, 5, first, 200 if first == Outcome.DELIVERED else 503,
                    next_at=NOW + 50 if first == Outcome.RETRY else None),
            Attempt(claimed.id, NOW + 1, 6, then, 200 if then == Outcome.DELIVERED else 503,
                    next_at=NOW + 70 if then == Outcome.RETRY else None)],
            "w1", NOW + 2) == kept
        (delivery,) = any_store.event(receipt.event_id)["deliveries"]
        assert (delivery["status"], delivery["attempts"], len(delivery["attempt_log"])) == (
            status, attempts, 2)
        assert [a["duration_ms"] for a in delivery["attempt_log"]] == [5, 6]


@everywhere
class TestPacing:
    def test_slots_are_spaced_by_the_interval(self, any_store):
        """Each reservation gets the next free slot, `interval` after the previous one."""
        slots = [any_store.reserve("1/bot", 0.5, NOW, 10) for _ in range(3)]
        assert slots == [(NOW, True), (NOW + 0.5, True), (NOW + 1.0, True)]
        assert any_store.reserve("2/other", 0.5, NOW, 10) == (NOW, True)

    def test_far_slots_are_reported_not_taken(self, any_store):
        """A slot beyond the horizon is returned without moving the bot's next slot."""
        for _ in range(3):
            any_store.reserve("1/bot", 5, NOW, 10)
        assert any_store.reserve("1/bot", 5, NOW, 10) == (NOW + 15, False)
        assert any_store.reserve("1/bot", 5, NOW + 5, 10) == (NOW + 15, True)

    def test_pause_holds_every_slot(self, any_store):
        """A pause (429 Retry-After) moves the bot's next slot to its end; it only grows."""
        any_store.pause("1/bot", NOW + 30)
        any_store.pause("1/bot", NOW + 5)
        assert any_store.pauses(NOW) == {"1/bot": NOW + 30}
        assert (any_store.paused_until("1/bot"), any_store.paused_until("2/never")) == (
            NOW + 30, 0.0)
        assert any_store.reserve("1/bot", 0.1, NOW, 60) == (NOW + 30, True)
        assert any_store.pauses(NOW + 31) == {}


class TestSqlite:
    """What only the SQLite backend does: its file lock, its own connection, its syncs."""

    def test_locked_sqlite_is_unavailable_not_an_error(self, tmp_path):
        """When SQLite stays locked past the timeout, the write fails as StoreUnavailable."""
        path = tmp_path / "relay.db"
        store = open_store(f"sqlite:///{path}", timeout=0.2)
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
        store.dispose()

    def test_reads_wait_for_no_writer(self, tmp_path):
        """While another process holds the write lock (SQLite's, and our processes' queue
        for it), every read answers at once: /readyz, /metrics and the console never wait
        behind webhook commits."""
        path = tmp_path / "relay.db"
        store = open_store(f"sqlite:///{path}", timeout=0.2)
        store.upgrade()
        event_id = accept(store, planned("a")).event_id
        queue = open(f"{path}.lock", "wb")  # noqa: SIM115 (held across the block)
        fcntl.flock(queue, fcntl.LOCK_EX)
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        blocker.execute("DELETE FROM deliveries")  # uncommitted: no reader sees it
        try:
            started = time.monotonic()
            store.ping()
            assert store.queue_stats(NOW) == (1, 0.0, 0)
            assert [e["id"] for e in store.events()] == [event_id]
            assert len(store.event(event_id)["deliveries"]) == 1
            assert store.failures() == []
            assert (store.pauses(NOW), store.paused_until("1/bot")) == ({}, 0.0)
            assert not store.session_alive("nobody", NOW)
            assert time.monotonic() - started < 0.2  # no busy timeout was waited out
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
            queue.close()
        store.dispose()

    def test_the_hot_paths_hold_no_connection_of_the_pool(self, tmp_path):
        """Accept, claim and record go through the backend's own connection: none of the
        pool's is kept checked out for them, so the pool can never hand it to a reader."""
        store = open_store(f"sqlite:///{tmp_path / 'relay.db'}")
        assert isinstance(store, SqliteStore)
        store.upgrade()
        accept(store, planned("a"))
        (claimed,) = store.claim("w", 1, NOW, LEASE)
        store.record_many([Attempt(claimed.id, NOW, 1, Outcome.DELIVERED, 200)], "w", NOW)
        assert store.engine.pool.checkedout() == 0
        store.dispose()

    def test_processes_queue_for_sqlite_instead_of_timing_out(self, tmp_path):
        """Four stores on one SQLite file (as four processes have) writing flat out, with a
        busy timeout of 5 ms: none of them is refused, because they queue for the lock
        rather than poll for it."""
        url = f"sqlite:///{tmp_path / 'relay.db'}"
        stores = [open_store(url, timeout=0.005) for _ in range(4)]
        stores[0].upgrade()

        def write(n):
            return accept(stores[n % 4], planned(f"k{n}"), body=b"x" * 2000).status

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(write, range(400))) == {"accepted"}
        assert len(stores[1].events(limit=500)) == 400
        for each in stores:
            each.dispose()

    def test_a_worker_store_commits_without_waiting_for_the_disk(self, tmp_path):
        """The web's commits are synced before a sender hears 2xx; the worker's are not (a
        lost lease or outcome only repeats a call), and the worker checkpoints the log."""
        url = f"sqlite:///{tmp_path / 'relay.db'}"
        web, worker = open_store(url), open_store(url, worker=True)
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

    def test_a_web_commit_is_synced_once_the_write_lock_is_let_go(self, tmp_path,
                                                                  monkeypatch):
        """The web's hot-path connection leaves the sync to the store (synchronous NORMAL),
        which syncs the log after each commit, with the writer queue free again; the worker
        never syncs; and a sync that fails answers StoreUnavailable (the sender retries)."""
        url = f"sqlite:///{tmp_path / 'relay.db'}"
        web, worker = open_store(url), open_store(url, worker=True)
        web.upgrade()
        synced = []

        def fdatasync(fd):
            synced.append((os.readlink(f"/proc/self/fd/{fd}"), web._writers._threads.locked()))

        monkeypatch.setattr(sqlite_store.os, "fdatasync", fdatasync)
        accept(web, planned("k1"))
        assert synced == [(str(tmp_path / "relay.db-wal"), False)]
        assert web._own_connection().execute("PRAGMA synchronous").fetchone() == (1,)
        assert [c.id for c in worker.claim("w", 10, NOW, 60)]
        assert len(synced) == 1  # the worker's claim: not synced

        def failing(fd):
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(sqlite_store.os, "fdatasync", failing)
        with pytest.raises(StoreUnavailable, match="could not be synced"):
            accept(web, planned("k2"))
        for store in (web, worker):
            store.dispose()
