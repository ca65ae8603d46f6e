"""The alert rules (relay/alerts/rules.py), pure: facts -> conditions, states -> transitions,
on times given, never read."""

from __future__ import annotations

from relay.alerts.rules import conditions, decide
from relay.alerts.targets import Thresholds

NOW = 1_700_000_000.0
LIMITS = Thresholds(every=900, window=900, failure_rate=0.25, min_attempts=20, queue_age=900,
                    link="/admin/failures")


def facts(dead=(), attempts=(), oldest=None):
    return {"dead": list(dead), "attempts": list(attempts), "oldest_pending": oldest}


def dead(mapping="leads", failure="timeout", count=3, last_at=NOW - 10, error="timed out"):
    return {"mapping": mapping, "failure": failure, "count": count, "last_at": last_at,
            "last_error": error}


class TestConditions:
    def test_dead_deliveries_group_per_mapping_and_failure_kind(self):
        """One condition per (mapping, kind), with its count and last error."""
        found = conditions(facts([dead(), dead(failure="server", count=1),
                                  dead("orders", count=2)]), [], [], LIMITS)
        assert sorted(found) == ["dead:leads:server", "dead:leads:timeout",
                                 "dead:orders:timeout"]
        cond = found["dead:leads:timeout"]
        assert (cond.count, cond.last_error, cond.mapping, cond.failure) == (
            3, "timed out", "leads", "timeout")
        assert found["dead:leads:server"].title == "1 delivery of leads went dead (server)"

    def test_a_death_without_a_kind_is_grouped_as_unknown(self):
        """Rows written before failure kinds existed still alert."""
        assert "dead:leads:unknown" in conditions(facts([dead(failure=None)]), [], [], LIMITS)

    def test_failure_rate_needs_the_minimum_number_of_attempts(self):
        """One failure out of one attempt is not a 100% failure rate worth an alert."""
        few = facts(attempts=[{"mapping": "leads", "total": 19, "failed": 19, "auth": 0}])
        assert conditions(few, [], [], LIMITS) == {}
        many = facts(attempts=[{"mapping": "leads", "total": 20, "failed": 6, "auth": 0}])
        assert list(conditions(many, [], [], LIMITS)) == ["failure_rate:leads"]
        under = facts(attempts=[{"mapping": "leads", "total": 20, "failed": 5, "auth": 0}])
        assert conditions(under, [], [], LIMITS) == {}

    def test_engati_401_is_one_condition_naming_the_mappings(self):
        """A wrong API key is one alert, whichever mappings met it."""
        found = conditions(facts(attempts=[
            {"mapping": "a", "total": 2, "failed": 2, "auth": 2},
            {"mapping": "b", "total": 1, "failed": 1, "auth": 1}]), [], [], LIMITS)
        (cond,) = found.values()
        assert (cond.key, cond.count, cond.mappings, cond.failure) == (
            "engati_auth", 3, ("a", "b"), "auth")
        assert "ENGATI_API_KEY" in cond.text

    def test_old_pending_delivery(self):
        """The oldest pending delivery over the threshold alerts; at it, not."""
        assert conditions(facts(oldest=900), [], [], LIMITS) == {}
        assert list(conditions(facts(oldest=901), [], [], LIMITS)) == ["queue_age"]

    def test_broken_and_locked_mappings(self):
        """A mapping that does not load and one waiting on a secret each alert."""
        found = conditions(facts(), [{"name": "x", "file": "x.yaml",
                                      "error": "x.yaml:3: phone: required"}],
                           [("y", "TYPEFORM_SECRET is not set")], LIMITS)
        assert sorted(found) == ["mapping_broken:x", "mapping_locked:y"]
        assert found["mapping_broken:x"].last_error == "x.yaml:3: phone: required"


def state(status, version=1, since=NOW - 100, sent_at=NOW - 100, last_at=None, kind="dead"):
    return {"status": status, "version": version, "since": since, "sent_at": sent_at,
            "last_at": last_at, "kind": kind}


class TestDecide:
    def active(self, **kwargs):
        return conditions(facts([dead(**kwargs)]), [], [], LIMITS)

    def test_a_new_condition_fires_once(self):
        """Active and never seen: fire; already firing with nothing newer: nothing."""
        (change,) = decide(self.active(), {}, NOW, 900)
        assert (change.key, change.version, change.message) == ("dead:leads:timeout", None,
                                                                "firing")
        states = {"dead:leads:timeout": state("firing", last_at=NOW - 10)}
        assert decide(self.active(), states, NOW + 1000, 900) == []

    def test_more_deaths_are_announced_at_most_once_per_period(self):
        """A newer death repeats the alert only once RELAY_ALERT_EVERY has passed."""
        states = {"dead:leads:timeout": state("firing", sent_at=NOW - 100, last_at=NOW - 200)}
        assert decide(self.active(last_at=NOW - 5), states, NOW, 900) == []
        (change,) = decide(self.active(last_at=NOW + 700), states, NOW + 800, 900)
        assert change.message == "firing"
        assert change.state["since"] == NOW - 100  # still the same episode
        assert change.state["last_at"] == NOW + 700

    def test_a_cleared_condition_resolves(self):
        """Firing but no longer active: one recovery message."""
        states = {"dead:leads:timeout": state("firing")}
        (change,) = decide({}, states, NOW, 900)
        assert (change.message, change.state["status"]) == ("resolved", "ok")
        assert change.condition.title == "Deliveries of leads no longer go dead (timeout)"
        assert decide({}, {"dead:leads:timeout": state("ok")}, NOW, 900) == []

    def test_a_flapping_condition_fires_again_only_after_the_period(self):
        """Resolved less than RELAY_ALERT_EVERY ago: it waits; after: it fires."""
        states = {"dead:leads:timeout": state("ok", version=2, sent_at=NOW - 60)}
        assert decide(self.active(), states, NOW, 900) == []
        (change,) = decide(self.active(), states, NOW + 840, 900)
        assert (change.message, change.version) == ("firing", 2)
