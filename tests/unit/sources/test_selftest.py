"""A mapping's `tests:`: each case maps an example body and compares with what it expects."""

from __future__ import annotations

from relay.sources.selftest import run_tests

MAPPING = """
phone: body.phone
filter: body.type == 'lead'
attributes:
  name: body.name
flows: [{flow_key: F1}]
tests:
  - name: a lead
    body: {type: lead, phone: "+919812345678", name: Asha}
    expect: {flow_key: F1, phone: "919812345678", attributes: {name: Asha}}
  - name: a ping is skipped
    body: {type: ping}
    expect: {skipped: true}
  - name: a lead without a phone fails
    body: {type: lead}
    expect: {errors: [phone]}
  - name: from a file
    body: examples/lead.json
    expect: {flow_key: F1}
"""


def test_passing_cases_have_no_failures(endpoint, tmp_path):
    """Deliveries, skips and expected errors all pass when they match; a body may be a
    file next to the mapping."""
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "lead.json").write_text('{"type": "lead", "phone": "9812345678"}')
    loaded = endpoint(MAPPING.replace("phone: body.phone\n", "phone: {path: body.phone, "
                                      "region: IN}\n", 1))
    assert {o.name: o.failures for o in run_tests(loaded)} == {
        "a lead": [], "a ping is skipped": [], "a lead without a phone fails": [],
        "from a file": []}


def test_differences_are_spelled_out(endpoint):
    """A wrong expectation names the field, what was expected and what came."""
    loaded = endpoint(MAPPING.replace("name: Asha}}", "name: Ravi}}").replace(
        "{skipped: true}", "{flow_key: F1}"))
    failures = {o.name: o.failures for o in run_tests(loaded)}
    assert failures["a lead"] == ["attributes.name: expected 'Ravi', got 'Asha'"]
    assert failures["a ping is skipped"] == [
        "expected a delivery, but the webhook was skipped (filter)"]
    assert failures["from a file"] == [f"body: no file examples/lead.json next to {loaded.file}"]


SCHEDULED = """
phone: body.phone
schedule: {at: body.starts, offset: -1h, if_past: skip, key: body.uri}
cancel: {key: body.uri, when: body.event == 'canceled'}
filter: body.event == 'created'
flows: [{flow_key: F1}]
tests:
  - name: an hour before
    now: "2026-12-03T10:00:00Z"
    body: {event: created, phone: "+919812345678", starts: "2026-12-03T18:30:00+05:30", uri: u1}
    expect: {flow_key: F1, send_at: "2026-12-03T17:30:00+05:30"}
  - name: epoch now, UTC send_at
    now: 1796292000
    body: {event: created, phone: "+919812345678", starts: "2026-12-03T18:30:00+05:30", uri: u1}
    expect: {send_at: "2026-12-03T12:00:00Z"}
  - name: a YAML timestamp is a time too
    now: 2026-12-03T10:00:00Z
    body: {event: created, phone: "+919812345678", starts: "2026-12-03T18:30:00+05:30", uri: u1}
    expect:
      deliveries: [{send_at: "2026-12-03T12:00:00Z"}]
  - name: the cancellation
    now: "2026-12-03T10:00:00Z"
    body: {event: canceled, uri: u1}
    expect: {cancels: [u1]}
  - name: too late is skipped
    now: "2026-12-03T12:30:00Z"
    body: {event: created, phone: "+919812345678", starts: "2026-12-03T18:30:00+05:30", uri: u1}
    expect: {skipped: true}
"""


class TestSchedules:
    def test_now_send_at_and_cancels_pass_when_they_match(self, endpoint):
        """`now:` (ISO text, epoch seconds or a YAML timestamp) is the arrival time;
        `send_at` is compared as an instant whatever its zone; `cancels` lists the keys."""
        outcomes = run_tests(endpoint(SCHEDULED))
        assert {o.name: o.failures for o in outcomes} == {o.name: [] for o in outcomes}
        assert len(outcomes) == 5

    def test_a_wrong_send_at_says_both_times_in_utc_and_why(self, endpoint):
        """The failure shows the expected and the actual instant in UTC, and how the
        mapping found its time."""
        loaded = endpoint(SCHEDULED.replace('send_at: "2026-12-03T17:30:00+05:30"',
                                            'send_at: "2026-12-03T18:30:00+05:30"'))
        (outcome, *_) = run_tests(loaded)
        assert outcome.failures == [
            "send_at: expected 2026-12-03T13:00:00Z, got 2026-12-03T12:00:00Z, in 2h "
            "(at body.starts (2026-12-03T13:00:00Z) - 1h)"]

    def test_at_once_is_null_and_the_arrival_time(self, endpoint):
        """null means at once: a scheduled delivery fails it, naming the arrival time; a
        mapping without a schedule passes it, and passes its own arrival time too."""
        loaded = endpoint("""
            phone: body.phone
            schedule: {delay: 30m}
            flows: [{flow_key: F1}]
            tests:
              - name: delayed, not at once
                now: "2026-12-03T10:00:00Z"
                body: {phone: "+919812345678"}
                expect: {send_at: null}
        """)
        assert run_tests(loaded)[0].failures == [
            "send_at: expected at once (2026-12-03T10:00:00Z), got 2026-12-03T10:30:00Z, "
            "in 30m (delay 30m)"]
        plain = endpoint("""
            phone: body.phone
            flows: [{flow_key: F1}]
            tests:
              - name: at once
                body: {phone: "+919812345678"}
                expect: {send_at: null}
              - name: at its arrival
                now: "2026-12-03T10:00:00Z"
                body: {phone: "+919812345678"}
                expect: {send_at: "2026-12-03T15:30:00+05:30"}
        """)
        assert [o.failures for o in run_tests(plain)] == [[], []]

    def test_a_delay_wanted_but_sent_at_once(self, endpoint):
        """An expected time met by a delivery at once says so, with the arrival time."""
        loaded = endpoint("""
            phone: body.phone
            flows: [{flow_key: F1}]
            tests:
              - name: no schedule
                now: 1796292000
                body: {phone: "+919812345678"}
                expect: {send_at: "2026-12-03T11:00:00Z"}
        """)
        assert run_tests(loaded)[0].failures == [
            "send_at: expected 2026-12-03T11:00:00Z, got at once (2026-12-03T10:00:00Z)"]

    def test_per_delivery_send_at_under_each(self, endpoint):
        """Under `each`, each entry of `deliveries` checks its own time."""
        loaded = endpoint("""
            each: body.items
            phone: item.phone
            schedule: {at: item.at}
            flows: [{flow_key: F1}]
            tests:
              - name: two times
                now: "2026-12-03T10:00:00Z"
                body: {items: [{phone: "+919812345678", at: "2026-12-03T11:00:00Z"},
                               {phone: "+919812345679", at: 1796302800}]}
                expect:
                  deliveries:
                    - {send_at: "2026-12-03T11:00:00Z"}
                    - {send_at: "2026-12-03T12:00:00Z"}
        """)
        assert run_tests(loaded)[0].failures == [
            "deliveries[1].send_at: expected 2026-12-03T12:00:00Z, got 2026-12-03T13:00:00Z, "
            "in 3h (at item.at (2026-12-03T13:00:00Z))"]

    def test_wrong_cancels_and_unexpected_deliveries(self, endpoint):
        """`cancels` compares the keys; a test of cancels alone expects no delivery."""
        loaded = endpoint(SCHEDULED.replace("expect: {cancels: [u1]}", "expect: {cancels: [u2]}"))
        failures = {o.name: o.failures for o in run_tests(loaded)}
        assert failures["the cancellation"] == [
            "cancels: expected ['u2'], got ['u1']"]
        created = endpoint(SCHEDULED.replace("body: {event: canceled, uri: u1}",
                                             'body: {event: created, uri: u1, phone: '
                                             '"+919812345678", starts: 1796302800}'))
        failures = {o.name: o.failures for o in run_tests(created)}
        assert failures["the cancellation"] == [
            "cancels: expected ['u1'], got [] (cancel.when was false, or the key was empty)",
            "expected 0 deliveries, got 1"]

    def test_a_cancelling_webhook_is_not_skipped(self, endpoint):
        """One that cancels was acted on: `skipped: true` fails, saying what it cancels."""
        loaded = endpoint(SCHEDULED.replace("expect: {cancels: [u1]}", "expect: {skipped: true}"))
        failures = {o.name: o.failures for o in run_tests(loaded)}
        assert failures["the cancellation"] == [
            "expected the webhook to be skipped, got cancels ['u1']"]

    def test_a_skipped_cancel_only_webhook(self, endpoint):
        """A cancel-only mapping whose `when` is false is skipped, and says so to a test
        expecting cancellations."""
        loaded = endpoint("""
            cancel: {key: body.token, mappings: [nudges], when: body.paid}
            tests:
              - name: unpaid
                now: "2026-12-03T10:00:00Z"
                body: {token: t1, paid: false}
                expect: {cancels: [t1]}
        """)
        assert run_tests(loaded)[0].failures == [
            "expected cancellations, but the webhook was skipped (cancel: nothing to cancel "
            "(cancel.when was false))"]

    def test_a_bad_now_fails_the_test_saying_what_a_time_is(self, endpoint):
        loaded = endpoint(SCHEDULED.replace('now: "2026-12-03T10:00:00Z"', "now: tomorrow", 1))
        assert run_tests(loaded)[0].failures == [
            "now: 'tomorrow' is not an ISO 8601 time, such as 2026-12-03T10:00:00Z or "
            "2026-12-03T15:30:00+05:30"]
