"""Scheduled deliveries and cancellations in the store (relay/store/cancels.py, the accept
paths of sql.py and sqlite.py): on SQLite and PostgreSQL, and what the fake keeps of it."""

from __future__ import annotations

from relay.mapping import Delivery, Result
from relay.mapping.model import Cancellation
from relay.model import Attempt, Outcome
from tests.unit.store.helpers import LEASE, NOW, accept, everywhere

HOUR = 3600.0


def scheduled(key: str | None = "tok-1", at: float = NOW + HOUR, dedup: str | None = None,
              phone: str = "919812345600") -> Result:
    return Result((Delivery("FLOW", "whatsapp", phone, {"n": 1}, dedup, send_at=at,
                            why="delay 1h", cancel_key=key),))


def cancelling(*keys: str, mappings: tuple[str, ...] = (), keep: float = 86400.0,
               skipped: str | None = None) -> Result:
    return Result(skipped=skipped,
                  cancels=tuple(Cancellation(k, mappings, keep) for k in keys))


def only_delivery(store, event_id):
    (delivery,) = store.event(event_id)["deliveries"]
    return delivery


@everywhere
class TestScheduled:
    def test_a_scheduled_delivery_waits_for_its_time(self, any_store):
        """Stored pending, due at its time (and counted from then for RELAY_MAX_AGE), with
        why; not claimed before, claimed at it."""
        receipt = accept(any_store, scheduled())
        d = only_delivery(any_store, receipt.event_id)
        assert (d["status"], d["next_at"], d["created_at"], d["schedule"], d["cancel_key"]) == (
            "pending", NOW + HOUR, NOW + HOUR, "delay 1h", "tok-1")
        assert any_store.claim("w", 10, NOW + HOUR - 1, LEASE) == []
        assert [c.id for c in any_store.claim("w", 10, NOW + HOUR, LEASE)] == [d["id"]]

    def test_a_time_already_past_is_due_at_once(self, any_store):
        """A send_at before the webhook arrived (if_past: send) is due when it arrived."""
        receipt = accept(any_store, scheduled(at=NOW - HOUR))
        assert only_delivery(any_store, receipt.event_id)["next_at"] == NOW

    def test_next_due_is_the_earliest_waiting_delivery(self, any_store):
        """next_due: the earliest pending delivery not in flight; None without one."""
        assert any_store.next_due(NOW) is None
        accept(any_store, scheduled(at=NOW + 50))
        accept(any_store, scheduled(at=NOW + 20, key="tok-2"))
        assert any_store.next_due(NOW) == NOW + 20
        any_store.claim("w", 1, NOW + 20, LEASE)  # in flight: not waiting
        assert any_store.next_due(NOW + 20) == NOW + 50

    def test_send_now_makes_it_due(self, any_store):
        """An operator's send-now: due at once, and its schedule says so."""
        d = only_delivery(any_store, accept(any_store, scheduled()).event_id)
        assert any_store.send_now(d["id"], NOW + 5)
        after = only_delivery(any_store, d["event_id"])
        assert (after["next_at"], after["schedule"]) == (NOW + 5, "sent now by an operator")
        assert [c.id for c in any_store.claim("w", 10, NOW + 5, LEASE)] == [d["id"]]

    def test_an_operator_cancels_one_delivery(self, any_store):
        """Cancelled by an operator: never claimed; a second cancel, or a send-now, is
        refused."""
        d = only_delivery(any_store, accept(any_store, scheduled()).event_id)
        assert any_store.cancel_delivery(d["id"], NOW + 1)
        after = only_delivery(any_store, d["event_id"])
        assert (after["status"], after["last_error"]) == ("cancelled", "cancelled by an operator")
        assert not any_store.cancel_delivery(d["id"], NOW + 2)
        assert not any_store.send_now(d["id"], NOW + 2)
        assert any_store.claim("w", 10, NOW + 2 * HOUR, LEASE) == []

    def test_in_flight_and_finished_deliveries_are_not_operated_on(self, any_store):
        """A delivery a worker holds, or one delivered, cannot be sent now or cancelled."""
        receipt = accept(any_store, scheduled(at=NOW))
        (claimed,) = any_store.claim("w", 10, NOW, LEASE)
        assert not any_store.cancel_delivery(claimed.id, NOW + 1)
        assert not any_store.send_now(claimed.id, NOW + 1)
        any_store.record_many([Attempt(claimed.id, NOW, 5.0, Outcome.DELIVERED, 200, 1000)],
                              "w", NOW + 1)
        assert not any_store.cancel_delivery(claimed.id, NOW + 2)
        assert only_delivery(any_store, receipt.event_id)["status"] == "delivered"
        assert not any_store.cancel_delivery(999_999, NOW)


class TestCancellation:
    def test_a_later_webhook_cancels_pending_deliveries_by_key(self, store):
        """Only the pending deliveries with the key, of the mappings named, are cancelled;
        the cancelling event's note says how many."""
        nudge = accept(store, scheduled("tok-1"), mapping="nudge")
        other_key = accept(store, scheduled("tok-2"), mapping="nudge")
        other_mapping = accept(store, scheduled("tok-1"), mapping="elsewhere")
        cancel = accept(store, cancelling("tok-1", mappings=("nudge",)), mapping="paid",
                        now=NOW + 60)
        assert (cancel.status, cancel.deliveries, cancel.cancelled) == ("accepted", 0, 1)
        d = only_delivery(store, nudge.event_id)
        assert (d["status"], d["last_error"]) == ("cancelled", f"cancelled by event "
                                                               f"{cancel.event_id}")
        assert only_delivery(store, other_key.event_id)["status"] == "pending"
        assert only_delivery(store, other_mapping.event_id)["status"] == "pending"
        assert store.event(cancel.event_id)["note"] == (
            "cancel: key 'tok-1' in nudge: 1 pending delivery cancelled")
        assert [c.event_id for c in store.claim("w", 10, NOW + 2 * HOUR, LEASE)] == [
            other_key.event_id, other_mapping.event_id]

    def test_without_mappings_a_mapping_cancels_its_own(self, store):
        """cancel: without `mappings` names the webhook's own mapping (Calendly's one URL
        for created and canceled); a skip note is kept beside the cancellation's."""
        reminder = accept(store, scheduled("uri-1"), mapping="calendly")
        cancel = accept(store, cancelling("uri-1", skipped="filter"), mapping="calendly",
                        now=NOW + 1)
        assert only_delivery(store, reminder.event_id)["status"] == "cancelled"
        assert store.event(cancel.event_id)["note"] == (
            "filter; cancel: key 'uri-1' in calendly: 1 pending delivery cancelled")
        assert store.event(cancel.event_id)["status"] == "accepted"

    def test_a_cancellation_that_comes_first_is_kept_for_its_delivery(self, store):
        """Within `keep`, a delivery arriving after its cancellation is stored cancelled;
        after it, pending."""
        first = accept(store, cancelling("tok-1", mappings=("nudge",), keep=600),
                       mapping="paid")
        early = accept(store, scheduled("tok-1"), mapping="nudge", now=NOW + 10)
        d = only_delivery(store, early.event_id)
        assert (d["status"], d["last_error"]) == ("cancelled",
                                                  f"cancelled by event {first.event_id}")
        late = accept(store, scheduled("tok-1", at=NOW + 2 * HOUR, dedup="again"),
                      mapping="nudge", now=NOW + 601)
        assert only_delivery(store, late.event_id)["status"] == "pending"

    def test_a_delivery_in_flight_is_not_cancelled(self, store):
        """A delivery whose call is under way was called: the cancellation leaves it, and
        its outcome is recorded."""
        receipt = accept(store, scheduled("tok-1", at=NOW), mapping="nudge")
        (claimed,) = store.claim("w", 10, NOW, LEASE)
        cancel = accept(store, cancelling("tok-1", mappings=("nudge",)), mapping="paid",
                        now=NOW + 1)
        assert "0 pending deliveries cancelled" in store.event(cancel.event_id)["note"]
        assert store.record_many([Attempt(claimed.id, NOW, 5.0, Outcome.DELIVERED, 200,
                                          1000)], "w", NOW + 2) == [True]
        assert only_delivery(store, receipt.event_id)["status"] == "delivered"

    def test_a_resent_cancellation_is_a_duplicate(self, store):
        """A cancel-only webhook with an id is stored once; the resend changes nothing."""
        result = Result(cancels=(Cancellation("tok-1", ("nudge",), 60.0),), key="evt-1")
        first = accept(store, result, mapping="paid")
        again = accept(store, result, mapping="paid", now=NOW + 1)
        assert (again.status, again.event_id) == ("duplicate", first.event_id)

    def test_cancellations_expire_and_are_pruned(self, store):
        """prune_cancels deletes the cancellations whose keep ran out."""
        accept(store, cancelling("a", keep=60), mapping="paid")
        accept(store, cancelling("b", keep=600), mapping="paid")
        assert store.prune_cancels(NOW + 61) == 1
        assert store.prune_cancels(NOW + 61) == 0
        late = accept(store, scheduled("b"), mapping="paid", now=NOW + 100)
        assert only_delivery(store, late.event_id)["status"] == "cancelled"

    def test_one_webhook_cancels_several_keys_in_several_mappings(self, store):
        """Each key in each mapping named."""
        a = accept(store, scheduled("k1"), mapping="m1")
        b = accept(store, scheduled("k2"), mapping="m2")
        cancel = accept(store, cancelling("k1", "k2", mappings=("m1", "m2")), mapping="x")
        assert {only_delivery(store, e.event_id)["status"] for e in (a, b)} == {"cancelled"}
        assert "2 pending deliveries cancelled" in store.event(cancel.event_id)["note"]

    def test_a_lookup_planned_delivery_honours_a_kept_cancellation(self, store):
        """The worker's insert of a delivery mapped from a lookup's answer checks the kept
        cancellations too (lookups.finish)."""
        from relay.mapping import Fetch
        from relay.model import Looked, LookupStatus
        event = accept(store, Result(lookups=(Fetch("https://graph.example/1", "L1"),)),
                       mapping="leads")
        accept(store, cancelling("tok-9", mappings=("leads",)), mapping="x", now=NOW + 1)
        (lookup,) = store.claim_lookups("w", 10, NOW + 2, LEASE)
        mapped = scheduled("tok-9", dedup="L1")
        assert store.finish_lookup(Looked(lookup.id, {"at": NOW + 2, "ms": 1.0, "http": 200,
                                                      "error": None},
                                          LookupStatus.DONE, result=mapped), "w", NOW + 3)
        assert only_delivery(store, event.event_id)["status"] == "cancelled"


def test_replay_never_queues_a_cancelled_delivery(store):
    """Replay leaves a cancelled delivery as final as a delivered one."""
    receipt = accept(store, Result((Delivery("FLOW", "whatsapp", "919812345600", {}, None,
                                             send_at=NOW + HOUR, cancel_key="k"),)))
    (d,) = store.event(receipt.event_id)["deliveries"]
    assert store.cancel_delivery(d["id"], NOW)
    counts = store.replay(receipt.event_id, Result((Delivery(
        "FLOW", "whatsapp", "919812345600", {}, None, send_at=NOW + HOUR, cancel_key="k"),)),
        NOW + 5)
    assert counts["queued"] == 0
    assert only_delivery(store, receipt.event_id)["status"] == "cancelled"


def test_a_webhook_that_only_cancelled_is_listed_as_accepted(store):
    """No delivery to count: its state is accepted, not delivered 0/0."""
    from relay.store.display import event_state
    receipt = accept(store, cancelling("k"), mapping="paid")
    (row,) = [r for r in store.events() if r["id"] == receipt.event_id]
    assert event_state(row) == "accepted"
