"""When a delivery is sent: `schedule:` (a delay, or a time from the payload with an offset)
and `quiet_hours:` (a daily window, in a named zone or the recipient's own).

Pure: the time the webhook arrived is passed in. Times are UNIX seconds, as the store keeps
them; the zones are the IANA database's (zoneinfo, with the `tzdata` package where the system
has none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_zones

from relay.mapping.model import QuietHours, Schedule, iso_utc

_DURATION = re.compile(r"^([+-])?(?=\d)(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNITS = (86400, 3600, 60, 1)
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
LAST_TIME = 32503680000  # UNIX seconds of the year 3000: no later epoch number is a time
# Epoch numbers above this are milliseconds: 10^11 seconds is the year 5138.
_MILLIS = 10**11
UNKNOWN_ZONE = "Etc/Unknown"  # what libphonenumber gives for a number it cannot place
AT_ONCE = "at once"  # the why of a delivery neither its schedule nor quiet hours moved


class ScheduleError(ValueError):
    """A value a schedule cannot use (the message says which and why)."""


def duration(value: Any) -> float:
    """Seconds in a duration as a mapping writes it: 30m, 1h30m, -1h, 2d, 90s, or a number
    of seconds. Raises ScheduleError."""
    if isinstance(value, bool):
        raise ScheduleError(f"expected a duration such as 30m, 1h or -1h, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value).strip().replace(" ", ""))
    if match is None or not any(match.groups()[1:]):
        raise ScheduleError(f"expected a duration such as 30m, 1h30m, -1h or 2d, got {value!r}")
    sign = -1.0 if match.group(1) == "-" else 1.0
    return sign * sum(int(n) * unit for n, unit in zip(match.groups()[1:], _UNITS,
                                                       strict=True) if n)


def clock(value: str) -> time:
    """A time of day as HH:MM (24-hour). Raises ScheduleError."""
    match = _CLOCK.match(str(value).strip())
    if match is None:
        raise ScheduleError(f"expected a time of day as HH:MM (24-hour), got {value!r}")
    return time(int(match.group(1)), int(match.group(2)))


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """An IANA time zone by name (Asia/Kolkata, UTC). Raises ScheduleError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r}; expected an IANA name such as "
                            "Asia/Kolkata, Europe/London or UTC") from None


def instant(value: Any, default_zone: ZoneInfo) -> float:
    """A time a payload gives: ISO 8601 (with a zone or offset, else in `default_zone`), or
    epoch seconds or milliseconds (a number, or digits). Raises ScheduleError."""
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise ScheduleError(f"expected a time (ISO 8601 or epoch seconds), got {_shown(value)}")
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
        value = float(value)
    if isinstance(value, int | float):
        seconds = float(value) / 1000 if abs(value) >= _MILLIS else float(value)
        if not 0 < seconds < LAST_TIME:
            raise ScheduleError(f"{value!r} is not a time: expected epoch seconds or "
                                "milliseconds")
        return seconds
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ScheduleError(f"{_shown(value)} is not an ISO 8601 time, such as "
                            "2026-12-03T10:00:00Z or 2026-12-03T15:30:00+05:30") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=default_zone)
    return parsed.timestamp()


def span(seconds: float) -> str:
    """A duration as a person reads it: 30m, 1h30m, -1h, 45s."""
    sign, seconds = ("-" if seconds < 0 else ""), abs(round(seconds))
    parts = [f"{n}{u}" for n, u in ((seconds // 86400, "d"), (seconds % 86400 // 3600, "h"),
                                    (seconds % 3600 // 60, "m"), (seconds % 60, "s")) if n]
    return sign + ("".join(parts) or "0s")


# --- a delivery's time ----------------------------------------------------------------------


@dataclass(frozen=True)
class When:
    """When one delivery is to be sent, and why, in words for previews and its page."""

    send_at: float
    why: str


def planned(schedule: Schedule | None, value: Any, now: float) -> When | str:
    """The time `schedule` gives a delivery of a webhook that arrived at `now` (`value`: what
    its `at` expression gave), or, as text, why the delivery is skipped (a time already
    past, with `if_past: skip`). Raises ScheduleError for a value that is no time."""
    if schedule is None:
        return When(now, AT_ONCE)
    if schedule.at is None:
        return When(now + schedule.delay, f"delay {span(schedule.delay)}")
    base = instant(value, zone(schedule.timezone))
    at = base + schedule.offset
    why = f"at {schedule.at.text} ({iso_utc(base)})"
    if schedule.offset:
        why += f" {'+' if schedule.offset > 0 else '-'} {span(abs(schedule.offset))}"
    if at - now > schedule.horizon:
        raise ScheduleError(f"{iso_utc(at)} is more than {span(schedule.horizon)} ahead "
                            "(schedule.horizon)")
    if at < now:
        if schedule.if_past == "skip":
            return f"{iso_utc(at)} had passed when the webhook arrived (if_past: skip)"
        return When(now, f"{why}, which had passed: at once (if_past: send)")
    return When(at, why)


def recipient_zones(phone: str) -> tuple[str, ...]:
    """The IANA zones libphonenumber gives for a number (digits, or E.164), unknown ones
    left out: empty where it cannot place the number."""
    try:
        parsed = phonenumbers.parse("+" + phone.lstrip("+"))
    except phonenumbers.NumberParseException:
        return ()
    return tuple(z for z in phone_zones.time_zones_for_number(parsed) if z != UNKNOWN_ZONE)


def zones_for(quiet: QuietHours, phone: str) -> tuple[tuple[ZoneInfo, ...], str]:
    """The zones whose clocks the window is read on, and how they were found (for `why`)."""
    if quiet.timezone != "recipient":
        return (zone(quiet.timezone),), quiet.timezone
    names = recipient_zones(phone)
    if not names:
        return (zone(quiet.fallback or "UTC"),), f"{quiet.fallback or 'UTC'} (the number's " \
            "zone is unknown)"
    if len(names) == 1:
        return (zone(names[0]),), names[0]
    return tuple(zone(n) for n in names), f"the {len(names)} zones of the number's country"


def quiet_end(quiet: QuietHours, at: float, phone: str) -> tuple[float, str] | None:
    """When a delivery due `at` may go, if `at` falls in the quiet window: the window's end,
    and why. None when `at` is outside it.

    A number libphonenumber places in several zones (a mobile number in Russia, Australia,
    Brazil, Indonesia, ...) waits until the window is over in every one of them; where no
    time of the day is outside the window in all of them, `fallback` (else the first zone
    libphonenumber lists) decides alone."""
    zones, named = zones_for(quiet, phone)
    found = _outside(quiet, at, zones)
    if found is None:  # no common time outside the window: one zone decides
        fallback = quiet.fallback or None
        zones = (zone(fallback),) if fallback else zones[:1]
        named = fallback or str(zones[0])
        found = _outside(quiet, at, zones)
        assert found is not None  # one zone always has a time outside a window
    if found == at:
        return None
    local = datetime.fromtimestamp(found, zones[0] if len(zones) == 1 else UTC)
    return found, (f"quiet hours {quiet.start:%H:%M}-{quiet.end:%H:%M} in {named}: "
                   f"waits until {local:%Y-%m-%d %H:%M} {local.tzname()}")


def _outside(quiet: QuietHours, at: float, zones: tuple[ZoneInfo, ...]) -> float | None:
    """The first time from `at` that is outside the window in every zone (None: none within
    two days, which means there is none)."""
    for _ in range(2 * len(zones) + 2):
        moved = False
        for z in zones:
            end = _window_end(quiet, at, z)
            if end is not None:
                at, moved = end, True
        if not moved:
            return at
    return None


def _window_end(quiet: QuietHours, at: float, z: ZoneInfo) -> float | None:
    """When the window that `at` falls in ends on the clocks of `z`; None if it is outside."""
    local = datetime.fromtimestamp(at, z)
    now, start, end = local.time().replace(tzinfo=None), quiet.start, quiet.end
    day: date = local.date()
    if start < end:  # a window within one day, 13:00-15:00
        if not start <= now < end:
            return None
    elif now >= start:  # overnight, 21:00-09:00: this evening, ending tomorrow
        day += timedelta(days=1)
    elif now >= end:
        return None
    ends = datetime.combine(day, end, tzinfo=z)
    if ends.timestamp() <= at:
        # `to` in the hour a clock repeats when it goes back, and `at` in its second pass
        # (02:10 the second time, to 02:30): the window ends at the second 02:30, not the
        # first, which is already past.
        ends = ends.replace(fold=1)
    return ends.timestamp() if ends.timestamp() > at else None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
