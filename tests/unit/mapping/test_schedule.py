"""When a delivery goes (relay/mapping/schedule.py): quiet hours on the recipient's clocks."""

from __future__ import annotations

from datetime import UTC, datetime, time

from relay.mapping.model import QuietHours, iso_utc
from relay.mapping.schedule import quiet_end


def _at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _ends(quiet: QuietHours, due: str, phone: str = "") -> str | None:
    found = quiet_end(quiet, _at(due), phone)
    return None if found is None else iso_utc(found[0])


class TestQuietHours:
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
