"""Scheduled and cancelled deliveries as operators see them: listed and filtered, sent now or
cancelled by hand, and kept out of the queue's age until they are due."""

from __future__ import annotations

from relay.mapping import Delivery, Result
from relay.model import Attempt, Outcome
from relay.store.display import event_state, why_not
from tests.unit.store.helpers import LEASE, NOW, accept, everywhere, planned

HOUR = 3600.0


def later(key: str, at: float = NOW + HOUR, cancel_key: str | None = "checkout-1") -> Result:
    """A delivery scheduled for `at` (a delay of the mapping's), with a cancel key."""
    return Result((Delivery("FLOW", "whatsapp", "919812345678", {}, key, send_at=at,
                            why="delay 1h", cancel_key=cancel_key),))


def only_delivery(store, event_id: int) -> dict:
    (d,) = store.event(event_id)["deliveries"]
    return d


class TestListing:
    @everywhere
    def test_a_scheduled_event_is_listed_with_its_time(self, any_store):
        """A delivery due later, never tried, makes its event scheduled, with the first
        due time; once that time has come it is only pending."""
        event_id = accept(any_store, later("a")).event_id
        (row,) = any_store.events(now=NOW)
        assert (row["scheduled"], row["scheduled_at"], row["pending"]) == (1, NOW + HOUR, 1)
        assert event_state(row) == "scheduled"
        assert [e["id"] for e in any_store.events(status="scheduled", now=NOW)] == [event_id]
        assert [e["id"] for e in any_store.events(status="pending", now=NOW)] == [event_id]
        (due,) = any_store.events(now=NOW + HOUR)
        assert due["scheduled"] == 0 and event_state(due) == "pending"
        assert any_store.events(status="scheduled", now=NOW + HOUR) == []

    @everywhere
    def test_an_event_with_a_delivery_sent_at_once_too_is_pending(self, any_store):
        """Scheduled only when every pending delivery is."""
        both = Result((*later("a").deliveries, *planned("b").deliveries))
        event_id = accept(any_store, both).event_id
        (row,) = any_store.events(now=NOW)
        assert (row["scheduled"], event_state(row)) == (1, "pending")
        assert [e["id"] for e in any_store.events(status="scheduled", now=NOW)] == [event_id]

    @everywhere
    def test_cancelled_events_filter_and_state(self, any_store):
        """cancelled lists events with a cancelled delivery; an event all of whose deliveries
        were cancelled shows cancelled, one delivered but for a cancelled one delivered."""
        alone = accept(any_store, later("a")).event_id
        mixed = accept(any_store, Result((*later("b", cancel_key=None).deliveries,
                                          *planned("c").deliveries))).event_id
        (sent,) = any_store.claim("w", 5, NOW, LEASE)  # only "c" is due
        any_store.record_many([Attempt(sent.id, NOW, 1, Outcome.DELIVERED, 200)], "w", NOW)
        for event_id in (alone, mixed):
            waiting = next(d for d in any_store.event(event_id)["deliveries"]
                           if d["status"] == "pending")
            assert any_store.cancel_delivery(waiting["id"], NOW + 1)
        rows = {e["id"]: e for e in any_store.events(now=NOW + 2)}
        assert (rows[alone]["cancelled"], event_state(rows[alone])) == (1, "cancelled")
        assert (rows[mixed]["cancelled"], event_state(rows[mixed])) == (1, "delivered")
        assert [e["id"] for e in any_store.events(status="cancelled")] == [mixed, alone]
        assert [e["id"] for e in any_store.events(status="delivered")] == [mixed]


class TestSendNowAndCancel:
    @everywhere
    def test_send_now_makes_it_due_at_once(self, any_store):
        """Sent now: claimed at once, its schedule says an operator sent it, and it has
        waited from then, not from the time it was scheduled for."""
        event_id = accept(any_store, later("a")).event_id
        d = only_delivery(any_store, event_id)
        assert any_store.claim("w", 5, NOW + 10, LEASE) == []
        assert any_store.send_now(d["id"], NOW + 10)
        d = only_delivery(any_store, event_id)
        assert (d["next_at"], d["created_at"]) == (NOW + 10, NOW + 10)
        assert d["schedule"] == "sent now by an operator"
        assert any_store.queue_stats(NOW + 15)[1] == 5
        (claimed,) = any_store.claim("w", 5, NOW + 10, LEASE)
        assert claimed.id == d["id"]

    @everywhere
    def test_cancel_means_never_called(self, any_store):
        """A cancelled delivery is never claimed, and says an operator cancelled it."""
        event_id = accept(any_store, later("a")).event_id
        d = only_delivery(any_store, event_id)
        assert any_store.cancel_delivery(d["id"], NOW)
        assert any_store.claim("w", 5, NOW + 2 * HOUR, LEASE) == []
        d = only_delivery(any_store, event_id)
        assert (d["status"], d["last_error"]) == ("cancelled", "cancelled by an operator")
        assert any_store.delivery(d["id"])["status"] == "cancelled"

    @everywhere
    def test_neither_applies_to_what_is_not_pending_or_in_flight(self, any_store):
        """False for a delivery in flight, delivered, cancelled or unknown, with why."""
        event_id = accept(any_store, planned("a")).event_id
        (claimed,) = any_store.claim("w", 1, NOW, LEASE)
        assert not any_store.send_now(claimed.id, NOW + 1)
        assert not any_store.cancel_delivery(claimed.id, NOW + 1)
        assert why_not(any_store.delivery(claimed.id), NOW + 1).startswith("in flight")
        any_store.record_many([Attempt(claimed.id, NOW, 1, Outcome.DELIVERED, 200)], "w", NOW)
        assert not any_store.cancel_delivery(claimed.id, NOW + 2)
        assert why_not(any_store.delivery(claimed.id), NOW + 2).startswith("already delivered")
        assert only_delivery(any_store, event_id)["status"] == "delivered"
        assert any_store.delivery(10**9) is None
        assert not any_store.send_now(10**9, NOW)
        assert why_not(None, NOW).startswith("no such delivery")

    @everywhere
    def test_twice_cancelled_says_so(self, any_store):
        event_id = accept(any_store, later("a")).event_id
        d = only_delivery(any_store, event_id)
        assert any_store.cancel_delivery(d["id"], NOW)
        assert not any_store.cancel_delivery(d["id"], NOW)
        assert not any_store.send_now(d["id"], NOW)
        assert why_not(any_store.delivery(d["id"]), NOW) == (
            "already cancelled by an operator")


class TestQueueFigures:
    @everywhere
    def test_a_delivery_scheduled_for_tomorrow_has_not_waited(self, any_store):
        """It counts in the queue's depth, never in its age (which is never negative), and
        does not hide the one really waiting."""
        accept(any_store, later("a", at=NOW + 24 * HOUR))
        assert any_store.queue_stats(NOW) == (1, 0.0, 0)
        assert any_store.alert_facts(NOW, 300, NOW - 300)["oldest_pending"] is None
        accept(any_store, planned("b"), now=NOW + 10)
        assert any_store.queue_stats(NOW + 40) == (2, 30.0, 0)
        assert any_store.alert_facts(NOW + 40, 300, NOW)["oldest_pending"] == 30.0

    @everywhere
    def test_one_retrying_later_still_waits(self, any_store):
        """A delivery between retries (due again later) keeps its age."""
        accept(any_store, planned("a"))
        (claimed,) = any_store.claim("w", 1, NOW, LEASE)
        any_store.record_many([Attempt(claimed.id, NOW, 1, Outcome.RETRY, 503,
                                       next_at=NOW + 600)], "w", NOW)
        assert any_store.queue_stats(NOW + 60)[1] == 60.0
        assert any_store.alert_facts(NOW + 60, 300, NOW)["oldest_pending"] == 60.0

    @everywhere
    def test_schedule_stats_count_later_and_cancelled(self, any_store):
        first = accept(any_store, later("a")).event_id
        accept(any_store, later("b", cancel_key="other"))
        accept(any_store, planned("c"))
        assert any_store.schedule_stats(NOW) == (2, 0)
        assert any_store.cancel_delivery(only_delivery(any_store, first)["id"], NOW)
        assert any_store.schedule_stats(NOW) == (1, 1)
        assert any_store.schedule_stats(NOW + 2 * HOUR) == (0, 1)

    @everywhere
    def test_a_retry_due_later_is_not_scheduled(self, any_store):
        accept(any_store, planned("a"))
        (claimed,) = any_store.claim("w", 1, NOW, LEASE)
        any_store.record_many([Attempt(claimed.id, NOW, 1, Outcome.RETRY, 503,
                                       next_at=NOW + 600)], "w", NOW)
        assert any_store.schedule_stats(NOW + 1) == (0, 0)
        assert any_store.events(now=NOW + 1)[0]["scheduled"] == 0
