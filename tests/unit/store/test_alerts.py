"""The store's alert rows (relay/store/alerts.py; the fake's too): the facts the rules read,
conditional transitions, and the outbox's leases. SQLite, PostgreSQL and the fake."""

from __future__ import annotations

from relay.model import Attempt, FailureKind, Outcome
from tests.unit.store.helpers import LEASE, NOW, accept, everywhere, planned

FIRING = {"kind": "dead", "status": "firing", "since": NOW, "sent_at": NOW, "last_at": NOW}
MESSAGES = [{"channel": "webhook", "message": {"schema": "relay.alert/1", "state": "firing"}},
            {"channel": "email", "message": {"schema": "relay.alert/1", "state": "firing"}}]


def fail(store, mapping, outcome, failure, now, error="boom"):
    """A delivery of `mapping` tried once at `now`, coming to `outcome`."""
    accept(store, planned(None), mapping=mapping, now=now)
    (claimed,) = store.claim("w", 1, now, LEASE)
    attempt = Attempt(claimed.id, now, 5.0, outcome, 500, None,
                      None if outcome == Outcome.DELIVERED else error,
                      None if outcome == Outcome.DELIVERED else failure,
                      now + 60 if outcome == Outcome.RETRY else None)
    store.record_many([attempt], "w", now)


@everywhere
class TestFacts:
    def test_dead_deliveries_grouped_with_the_last_error(self, any_store):
        """Dead since the given time, per mapping and kind, newest error; older ones out."""
        fail(any_store, "leads", Outcome.DEAD, FailureKind.REJECTED, NOW - 2000, "too old")
        fail(any_store, "leads", Outcome.DEAD, FailureKind.REJECTED, NOW - 20, "first")
        fail(any_store, "leads", Outcome.DEAD, FailureKind.REJECTED, NOW - 10, "second")
        fail(any_store, "leads", Outcome.DEAD, FailureKind.AUTH, NOW - 5, "401")
        fail(any_store, "orders", Outcome.DELIVERED, None, NOW - 5)
        facts = any_store.alert_facts(NOW, 900, NOW - 900)
        assert facts["dead"] == [
            {"mapping": "leads", "failure": "auth", "count": 1, "last_at": NOW - 5,
             "last_error": "401"},
            {"mapping": "leads", "failure": "rejected", "count": 2, "last_at": NOW - 10,
             "last_error": "second"}]

    def test_recent_attempts_per_mapping(self, any_store):
        """Attempts of the window, counted per mapping: failed and auth among them."""
        fail(any_store, "leads", Outcome.RETRY, FailureKind.SERVER, NOW - 10)
        fail(any_store, "leads", Outcome.DEAD, FailureKind.AUTH, NOW - 10)
        fail(any_store, "leads", Outcome.DELIVERED, None, NOW - 10)
        fail(any_store, "leads", Outcome.DEAD, FailureKind.AUTH, NOW - 1000)  # out of window
        facts = any_store.alert_facts(NOW, 900, NOW - 900)
        assert facts["attempts"] == [{"mapping": "leads", "total": 3, "failed": 2, "auth": 1}]
        assert facts["oldest_pending"] == 10  # the retrying one

    def test_nothing(self, any_store):
        assert any_store.alert_facts(NOW, 900, NOW - 900) == {
            "dead": [], "attempts": [], "oldest_pending": None}


@everywhere
class TestTransitions:
    def test_a_transition_happens_once(self, any_store):
        """Two workers making the same first transition: one wins, one set of messages."""
        assert any_store.alert_transition("k", None, FIRING, MESSAGES, NOW)
        assert not any_store.alert_transition("k", None, FIRING, MESSAGES, NOW)
        state = any_store.alert_states()["k"]
        assert (state["status"], state["version"], state["kind"]) == ("firing", 1, "dead")
        resolved = {**FIRING, "status": "ok", "since": NOW + 5}
        assert any_store.alert_transition("k", 1, resolved, [], NOW + 5)
        assert not any_store.alert_transition("k", 1, resolved, MESSAGES, NOW + 5)
        assert any_store.alert_states()["k"]["version"] == 2
        assert len(any_store.alert_claim("w", NOW + 5, LEASE, 10)) == 2

    def test_messages_are_leased_to_one_worker(self, any_store):
        """A claimed message is not claimed again until its lease runs out."""
        any_store.alert_transition("k", None, FIRING, MESSAGES, NOW)
        first = any_store.alert_claim("w1", NOW, LEASE, 1)
        assert [m["channel"] for m in first] == ["webhook"]
        assert first[0]["message"] == MESSAGES[0]["message"]
        second = any_store.alert_claim("w2", NOW, LEASE, 10)
        assert [m["channel"] for m in second] == ["email"]
        assert any_store.alert_claim("w3", NOW + 1, LEASE, 10) == []
        assert len(any_store.alert_claim("w3", NOW + LEASE + 1, LEASE, 10)) == 2

    def test_sent_retried_and_given_up(self, any_store):
        """Sent: never again; retried: due at next_at; given up: never again; a worker that
        lost its lease changes nothing."""
        any_store.alert_transition("k", None, FIRING, MESSAGES, NOW)
        webhook, mail = any_store.alert_claim("w", NOW, LEASE, 10)
        assert not any_store.alert_finish(webhook["id"], "other", NOW, error=None, next_at=None)
        assert any_store.alert_finish(webhook["id"], "w", NOW, error=None, next_at=None)
        assert any_store.alert_finish(mail["id"], "w", NOW, error="down", next_at=NOW + 10)
        assert any_store.alert_claim("w", NOW + 9, LEASE, 10) == []
        (again,) = any_store.alert_claim("w", NOW + 10, LEASE, 10)
        assert (again["id"], again["attempts"], again["last_error"]) == (mail["id"], 1, "down")
        assert any_store.alert_finish(again["id"], "w", NOW + 10, error="down", next_at=None)
        assert any_store.alert_claim("w", NOW + 10_000, LEASE, 10) == []
