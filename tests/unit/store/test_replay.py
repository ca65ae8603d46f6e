"""Replay: a stored event mapped again, its dead deliveries queued, delivered ones never."""

from __future__ import annotations

from relay.mapping import Result
from relay.model import Attempt, Outcome
from relay.store.replay import replay_event
from tests.unit.store.helpers import FAILED, LEASE, NOW, accept, planned

FIXED = """
phone: body.phone
flows:
  - flow_key: ABC
"""


class TestStoreReplay:
    def test_replay_requeues_dead_but_never_delivered(self, store):
        """Replay queues a dead delivery again and leaves a delivered one alone."""
        event_id = accept(store, planned("a", "b", item=True)).event_id
        first, second = store.claim("w", 10, NOW, LEASE)
        store.record_many([Attempt(first.id, NOW, 1, Outcome.DELIVERED, 200)], "w", NOW)
        store.record_many([Attempt(second.id, NOW, 1, Outcome.DEAD, 400)], "w", NOW)
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

    def test_a_replay_that_changes_the_status_gives_the_key_up(self, store):
        """A replay that changes an event's status gives its key up rather than clash with
        another event holding that key under the new status."""
        failed = Result(errors=FAILED.errors, key="K")
        skipped = Result(skipped="filter", key="K")
        first = accept(store, failed)
        other = accept(store, skipped)
        store.replay(first.event_id, skipped, NOW + 1)  # now skipped too: no clash
        assert store.event(first.event_id)["status"] == "skipped"
        assert accept(store, skipped).event_id == other.event_id


class TestReplayEvent:
    def test_a_failed_event_is_mapped_again_with_the_current_mapping(self, store, endpoint):
        """The event's stored body goes through the mapping as it is now."""
        event_id = accept(store, FAILED, body=b'{"phone": "+919812345678"}').event_id
        replayed = replay_event(store, {"leads": endpoint(FIXED)}.get, event_id, NOW)
        assert (replayed.ok, replayed.message) == (True, "1 queued, 0 already delivered")
        assert store.event(event_id)["deliveries"][0]["phone"] == "919812345678"

    def test_what_cannot_be_replayed_says_why(self, store, mapping):
        """An unknown event, or one whose mapping is gone, is not replayed."""
        event_id = accept(store, FAILED).event_id
        assert replay_event(store, {}.get, event_id, NOW).message == (
            "mapping 'leads' no longer exists")
        assert replay_event(store, {}.get, 999, NOW).to_dict() == {
            "event_id": 999, "ok": False, "message": "no such event"}
