"""Scheduling in mappings: `schedule:`, `quiet_hours:` and `cancel:` as loaded, and what
evaluate() makes of them on a given arrival time (relay/mapping/schedule.py, evaluate.py)."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from relay.errors import MappingLoadError
from relay.mapping import evaluate
from relay.mapping import schedule as timing
from relay.mapping.load import load
from relay.mapping.model import QuietHours, iso_utc


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


NOW = at("2026-12-03T05:00:00+00:00")  # 10:30 in India
INDIA = "+919812345678"


def mapping(extra: str, head: str = "phone: body.phone\nflows: [{flow_key: F}]\n"):
    return load(head + extra, "m.yaml", {})


def problems(text: str) -> list[str]:
    with pytest.raises(MappingLoadError) as caught:
        load(text, "m.yaml", {})
    return [p.message for p in caught.value.problems]


def only(result):
    (delivery,) = result.deliveries
    return delivery


class TestValues:
    @pytest.mark.parametrize(("text", "seconds"), [
        ("30m", 1800), ("1h30m", 5400), ("-1h", -3600), ("2d", 172800), ("90s", 90),
        (45, 45), ("1d 2h", 93600)])
    def test_durations(self, text, seconds):
        assert timing.duration(text) == seconds

    @pytest.mark.parametrize("text", ["", "h", "1x", "1h-30m", True, "m30"])
    def test_bad_durations_say_what_is_expected(self, text):
        with pytest.raises(timing.ScheduleError, match="duration"):
            timing.duration(text)

    @pytest.mark.parametrize(("value", "expected"), [
        ("2026-12-03T10:00:00Z", at("2026-12-03T10:00:00+00:00")),
        ("2026-12-03T15:30:00+05:30", at("2026-12-03T10:00:00+00:00")),
        ("2026-12-03T10:00:00", at("2026-12-03T10:00:00+00:00")),  # no zone: the default
        (1796292000, 1796292000.0), (1796292000123, 1796292000.123), ("1796292000", 1796292000.0)])
    def test_instants(self, value, expected):
        assert timing.instant(value, timing.zone("UTC")) == pytest.approx(expected)

    def test_a_time_without_a_zone_is_read_in_the_schedules_zone(self):
        assert timing.instant("2026-12-03T15:30:00", timing.zone("Asia/Kolkata")) == at(
            "2026-12-03T10:00:00+00:00")

    @pytest.mark.parametrize("value", ["tomorrow", {"a": 1}, None, True, -5, "2026-13-01"])
    def test_values_that_are_no_time(self, value):
        with pytest.raises(timing.ScheduleError):
            timing.instant(value, timing.zone("UTC"))


class TestSchedule:
    def test_a_delay_counts_from_the_arrival(self):
        d = only(evaluate(mapping("schedule: {delay: 30m}\n"), {"body": {"phone": INDIA}}, NOW))
        assert (d.send_at, d.why) == (NOW + 1800, "delay 30m")
        assert d.to_dict()["send_at"] == "2026-12-03T05:30:00Z"

    def test_a_payload_time_with_an_offset(self):
        m = mapping("schedule: {at: body.start, offset: -1h}\n")
        d = only(evaluate(m, {"body": {"phone": INDIA, "start": "2026-12-04T10:00:00Z"}}, NOW))
        assert d.send_at == at("2026-12-04T09:00:00+00:00")
        assert d.why == "at body.start (2026-12-04T10:00:00Z) - 1h"

    def test_a_past_time_is_sent_at_once_or_skipped(self):
        body = {"body": {"phone": INDIA, "start": "2026-12-03T04:30:00Z"}}
        sent = only(evaluate(mapping("schedule: {at: body.start}\n"), body, NOW))
        assert sent.send_at == NOW and "which had passed: at once" in sent.why
        skipped = evaluate(mapping("schedule: {at: body.start, if_past: skip}\n"), body, NOW)
        assert (skipped.status, skipped.skipped) == ("skipped", (
            "schedule: 2026-12-03T04:30:00Z had passed when the webhook arrived "
            "(if_past: skip)"))

    def test_under_each_every_item_has_its_own_time(self):
        m = mapping("each: body.rows\nschedule: {at: item.at, if_past: skip}\n",
                    head="phone: item.phone\nflows: [{flow_key: F}]\n")
        rows = [{"phone": INDIA, "at": NOW + 60}, {"phone": INDIA, "at": NOW - 60},
                {"phone": INDIA, "at": NOW + 120}]
        result = evaluate(m, {"body": {"rows": rows}}, NOW)
        assert [(d.item, d.send_at) for d in result.deliveries] == [(0, NOW + 60),
                                                                    (2, NOW + 120)]
        every = evaluate(m, {"body": {"rows": [rows[1]]}}, NOW)
        assert every.skipped.startswith("every item was skipped (schedule: ")

    def test_a_payload_without_a_time_fails_the_item(self):
        m = mapping("schedule: {at: body.start}\n")
        result = evaluate(m, {"body": {"phone": INDIA, "start": "soon"}}, NOW)
        assert [str(e) for e in result.errors] == [
            "schedule.at: 'soon' is not an ISO 8601 time, such as 2026-12-03T10:00:00Z or "
            "2026-12-03T15:30:00+05:30"]

    def test_a_time_beyond_the_horizon_fails(self):
        m = mapping("schedule: {at: body.start, horizon: 7d}\n")
        result = evaluate(m, {"body": {"phone": INDIA, "start": "3000-01-01T00:00:00Z"}}, NOW)
        assert "more than 7d ahead" in str(result.errors[0])

    def test_the_key_is_computed_per_delivery(self):
        m = mapping("schedule: {delay: 1h, key: body.token}\n")
        assert only(evaluate(m, {"body": {"phone": INDIA, "token": "c1"}}, NOW)).cancel_key == "c1"
        assert only(evaluate(m, {"body": {"phone": INDIA, "token": 42}}, NOW)).cancel_key == "42"
        long = "x" * 600
        key = only(evaluate(m, {"body": {"phone": INDIA, "token": long}}, NOW)).cancel_key
        assert key.startswith("sha256:") and len(key) == 71
        bad = evaluate(m, {"body": {"phone": INDIA, "token": {"a": 1}}}, NOW)
        assert "schedule.key" in str(bad.errors[0])

    def test_without_a_schedule_nothing_changes(self):
        d = only(evaluate(mapping(""), {"body": {"phone": INDIA}}, NOW))
        assert (d.send_at, d.why, d.cancel_key) == (None, None, None)
        assert "send_at" not in d.to_dict()


class TestQuietHours:
    QUIET = 'quiet_hours: {from: "21:00", to: "09:00"}\n'

    def test_a_time_in_the_recipients_night_waits_for_the_morning(self):
        """22:00 in India (16:30 UTC) waits for 09:00 India time."""
        m = mapping("schedule: {delay: 11h30m}\n" + self.QUIET)
        d = only(evaluate(m, {"body": {"phone": INDIA}}, NOW))
        assert d.send_at == at("2026-12-04T03:30:00+00:00")
        assert "quiet hours 21:00-09:00 in Asia/" in d.why and "09:00 IST" in d.why

    def test_a_time_outside_is_left(self):
        d = only(evaluate(mapping(self.QUIET), {"body": {"phone": INDIA}}, NOW))
        assert (d.send_at, d.why) == (None, None)

    def test_a_named_zone(self):
        m = mapping('quiet_hours: {from: "00:00", to: "08:00", timezone: Europe/London}\n')
        d = only(evaluate(m, {"body": {"phone": INDIA}}, NOW))  # 05:00 in London
        assert d.send_at == at("2026-12-03T08:00:00+00:00")

    def test_a_window_within_the_day(self):
        m = mapping('quiet_hours: {from: "10:00", to: "12:00", timezone: Asia/Kolkata}\n')
        d = only(evaluate(m, {"body": {"phone": INDIA}}, NOW))  # 10:30 in India
        assert d.send_at == at("2026-12-03T06:30:00+00:00")

    def test_a_country_of_many_zones_waits_for_all_of_them(self):
        """A Russian mobile number: libphonenumber lists zones from UTC+2 to UTC+12; the
        delivery waits until it is 09:00-21:00 in every one."""
        zones = timing.recipient_zones("79161234567")
        assert len(zones) > 5
        quiet = mapping(self.QUIET).quiet_hours
        found = timing.quiet_end(quiet, at("2026-12-03T22:00:00+00:00"), "79161234567")
        assert found is not None
        for name in zones:
            local = datetime.fromtimestamp(found[0], timing.zone(name)).time()
            assert timing.clock("09:00") <= local < timing.clock("21:00"), name

    def test_no_common_time_falls_back_to_one_zone(self):
        """Quiet 18:00-08:00 leaves no hour outside it in every Russian zone: the fallback
        zone decides alone."""
        quiet = mapping('quiet_hours: {from: "18:00", to: "08:00", fallback: Europe/Moscow}\n'
                        ).quiet_hours
        found = timing.quiet_end(quiet, at("2026-12-03T20:00:00+00:00"), "79161234567")
        assert found is not None and "Europe/Moscow" in found[1]
        assert datetime.fromtimestamp(found[0], timing.zone("Europe/Moscow")).hour == 8

    def test_an_unplaceable_number_uses_the_fallback(self):
        quiet = mapping('quiet_hours: {from: "21:00", to: "09:00", fallback: Asia/Dubai}\n'
                        ).quiet_hours
        assert timing.recipient_zones("888123") == ()
        found = timing.quiet_end(quiet, at("2026-12-03T18:00:00+00:00"), "888123")
        assert found is not None and "Asia/Dubai (the number's zone is unknown)" in found[1]


class TestCancel:
    def test_a_webhook_cancels_by_key_whatever_the_filter_says(self):
        m = mapping("filter: \"body.event == 'created'\"\n"
                    "cancel: {key: body.uri, when: \"body.event == 'canceled'\"}\n")
        result = evaluate(m, {"body": {"event": "canceled", "uri": "u-1", "phone": INDIA}})
        assert (result.status, result.skipped) == ("planned", "filter")
        assert [c.to_dict() for c in result.cancels] == [
            {"key": "u-1", "mappings": [], "keep": 86400.0}]
        created = evaluate(m, {"body": {"event": "created", "uri": "u-1", "phone": INDIA}})
        assert created.cancels == () and len(created.deliveries) == 1

    def test_a_cancel_only_mapping(self):
        m = load("cancel: {key: body.checkout_token, mappings: [nudge], keep: 2d}\nid: body.id\n",
                 "paid.yaml", {})
        result = evaluate(m, {"body": {"checkout_token": "c1", "id": 7}})
        assert (result.status, result.key) == ("planned", "7")
        assert result.cancels[0].to_dict() == {"key": "c1", "mappings": ["nudge"],
                                               "keep": 172800.0}
        nothing = evaluate(m, {"body": {}})
        assert (nothing.status, nothing.skipped) == ("skipped", "cancel: nothing to cancel")

    def test_a_list_of_keys_and_bad_keys(self):
        m = load("cancel: {key: body.tokens}\n", "c.yaml", {})
        assert [c.key for c in evaluate(m, {"body": {"tokens": ["a", "b", "a", 3]}}).cancels] == [
            "a", "b", "3"]
        assert "cancel.key" in str(evaluate(m, {"body": {"tokens": [{"x": 1}]}}).errors[0])
        assert "at most 100" in str(evaluate(m, {"body": {"tokens": list(range(101))}}).errors[0])


class TestLoad:
    def test_schedule_mistakes_are_reported_by_key(self):
        found = problems("phone: body.p\nflows: [{flow_key: F}]\n"
                         "schedule: {delay: 1h, at: body.t}\n")
        assert any("either `delay`" in p for p in found)
        found = problems("phone: body.p\nflows: [{flow_key: F}]\n"
                         "schedule: {delay: -5m, offset: 1h, timezone: Mars/Base}\n")
        assert "a delay cannot be negative" in found
        assert "`offset` only applies to `at`" in found
        assert "`timezone` only applies to `at`" in found
        assert any("unknown time zone 'Mars/Base'" in p for p in found)

    def test_quiet_hours_and_cancel_mistakes(self):
        found = problems("phone: body.p\nflows: [{flow_key: F}]\n"
                         'quiet_hours: {from: "09:00", to: "09:00", timezone: Nowhere}\n'
                         "cancel: {key: body.k, keep: 31d}\n")
        assert any("the same time" in p for p in found)
        assert any("unknown time zone 'Nowhere'" in p for p in found)
        assert "expected a duration from 0 to 30d" in found
        assert any("25:00" in p or "does not match" in p for p in problems(
            "phone: body.p\nflows: [{flow_key: F}]\nquiet_hours: {from: \"25:00\", to: "
            "\"09:00\"}\n"))

    def test_only_a_cancelling_mapping_may_leave_out_phone_and_flows(self):
        assert problems("flows: [{flow_key: F}]\ncancel: {key: body.k}\n") == [
            "phone is required (only a mapping with cancel: may leave out both phone and "
            "flows)"]


def _at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _ends(quiet: QuietHours, due: str, phone: str = "") -> str | None:
    found = timing.quiet_end(quiet, _at(due), phone)
    return None if found is None else iso_utc(found[0])


class TestQuietHourEdges:
    def test_an_overnight_window_ends_the_next_morning_in_the_recipients_zone(self):
        quiet = QuietHours(time(21), time(9))
        assert _ends(quiet, "2026-12-03T16:00", "919812345678") == "2026-12-04T03:30:00Z"
        assert _ends(quiet, "2026-12-03T06:00", "919812345678") is None

    def test_several_zones_wait_until_the_window_is_over_in_all(self):
        """A Russian mobile number: between 09:00 in Kaliningrad and 21:00 in Kamchatka."""
        quiet = QuietHours(time(21), time(9))
        assert _ends(quiet, "2026-12-03T12:00", "79123456789") == "2026-12-04T07:00:00Z"

    def test_no_common_time_lets_the_fallback_decide(self):
        quiet = QuietHours(time(20), time(10), fallback="Europe/Moscow")
        assert _ends(quiet, "2026-12-03T00:00", "79123456789") == "2026-12-03T07:00:00Z"

    def test_a_window_ending_in_the_repeated_hour_never_sends_earlier_than_due(self):
        """Berlin goes back from 03:00 CEST to 02:00 CET on 2026-10-25: a delivery due at
        02:10 CET (the second 02:10) waits for 02:30 CET, not the 02:30 CEST before it."""
        quiet = QuietHours(time(22), time(2, 30), timezone="Europe/Berlin")
        assert _ends(quiet, "2026-10-25T01:10", "") == "2026-10-25T01:30:00Z"
        assert _ends(quiet, "2026-10-25T00:10", "") == "2026-10-25T00:30:00Z"  # the first 02:10
