"""The history for operators: listing events and failures, the queue's figures, purging."""

from __future__ import annotations

from relay.model import Attempt, FailureKind, Outcome
from relay.store import STATUSES
from tests.unit.store.helpers import FAILED, LEASE, NOW, accept, everywhere, planned


class TestReads:
    def test_the_filters_are_named_in_plain_text(self):
        """What `events(status=...)` takes is offered as it is typed (`relay events
        --status dead`, `/api/events?status=dead`): plain strings, not enum members."""
        assert STATUSES == ("accepted", "skipped", "failed", "pending", "delivered", "dead",
                            "scheduled", "cancelled")
        assert {type(status) for status in STATUSES} == {str}

    @everywhere
    def test_events_filter_by_derived_state(self, any_store):
        """Events list by derived state: pending, delivered, dead, failed, accepted."""
        dead = accept(any_store, planned("d")).event_id
        delivered = accept(any_store, planned("ok")).event_id
        pending = accept(any_store, planned("p")).event_id
        failed = accept(any_store, FAILED).event_id
        for claimed in any_store.claim("w", 2, NOW, LEASE):
            outcome = Outcome.DEAD if claimed.event_id == dead else Outcome.DELIVERED
            any_store.record_many([Attempt(claimed.id, NOW, 1, outcome, 400)], "w", NOW)
        ids = {s: [e["id"] for e in any_store.events(status=s)]
               for s in ("dead", "delivered", "pending", "failed", "accepted")}
        assert ids == {"dead": [dead], "delivered": [delivered], "pending": [pending],
                       "failed": [failed], "accepted": [pending, delivered, dead]}

    @everywhere
    def test_events_count_deliveries_and_page(self, any_store):
        """Each listed event counts its deliveries by status; `before` pages back and the
        phone and mapping filters narrow the list."""
        first = accept(any_store, planned("a", "b", item=True)).event_id
        second = accept(any_store, planned("c"), mapping="other").event_id
        (row,) = any_store.events(before=second)
        assert (row["id"], row["total"], row["pending"], row["dead"]) == (first, 2, 2, 0)
        assert [e["id"] for e in any_store.events(mapping="other")] == [second]
        assert [e["id"] for e in any_store.events(phone="+91 98123 45601")] == [first]
        assert [e["id"] for e in any_store.events(limit=1)] == [second]

    @everywhere
    def test_queue_stats_and_failures(self, any_store):
        """The queue's figures count pending and dead deliveries; the failures list the
        failed mapping and the dead delivery with its kind, newest first."""
        accept(any_store, planned("a"), now=NOW - 30)
        dead = accept(any_store, planned("b"), now=NOW).event_id
        failed = accept(any_store, FAILED, now=NOW + 1).event_id
        (claimed,) = [c for c in any_store.claim("w", 10, NOW, LEASE) if c.event_id == dead]
        any_store.record_many([Attempt(claimed.id, NOW, 1, Outcome.DEAD, 401, None,
                                       "Engati answered HTTP 401", FailureKind.AUTH)],
                              "w", NOW + 2)
        assert any_store.queue_stats(NOW + 10) == (1, 40.0, 1)
        items = any_store.failures()
        assert [(i["kind"], i["event_id"]) for i in items] == [("dead", dead),
                                                               ("failed", failed)]
        assert (items[0]["failure"], items[0]["last_error"]) == (
            "auth", "Engati answered HTTP 401")

    def test_replayable_events(self, store):
        """Replayable: events with dead deliveries, failed events, by mapping and time."""
        dead = accept(store, planned("d")).event_id
        failed = accept(store, FAILED, now=NOW + 10).event_id
        (claimed,) = store.claim("w", 10, NOW, LEASE)
        store.record_many([Attempt(claimed.id, NOW, 1, Outcome.DEAD, 400)], "w", NOW)
        assert store.replayable(dead=True, failed=True, mapping=None, since=None) == [
            dead, failed]
        assert store.replayable(dead=True, failed=True, mapping=None, since=NOW + 5) == [failed]
        assert store.replayable(dead=True, failed=False, mapping="other", since=None) == []


class TestPurge:
    def test_purges_finished_events_and_keeps_pending_and_recent(self, store):
        """Old finished events go with their attempts; pending and recent ones stay."""
        old_done = accept(store, planned("a"), now=NOW).event_id
        old_failed = accept(store, FAILED, now=NOW).event_id
        old_pending = accept(store, planned("b"), now=NOW).event_id
        recent = accept(store, planned("c"), now=NOW + 1000).event_id
        claimed = {c.event_id: c for c in store.claim("w", 10, NOW + 2000, LEASE)}
        for event_id in (old_done, recent):
            store.record_many([Attempt(claimed[event_id].id, NOW, 1, Outcome.DELIVERED, 200)],
                              "w", NOW)
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
