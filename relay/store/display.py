"""Stored events as people read them: in the console and in the CLI's listings."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from relay.errors import field_errors
from relay.model import DeliveryStatus, EventStatus, LookupStatus
from relay.store.base import SCHEDULED
from relay.store.cancels import cancelling_event
from relay.store.rows import utf8


def pretty_body(raw: bytes) -> str:
    """A stored body as people read it: JSON indented, anything else as it came."""
    text = raw.decode("utf-8", "replace")
    try:
        return utf8(json.dumps(json.loads(text), indent=2, ensure_ascii=False))
    except (ValueError, RecursionError):
        return text


def event_problem(row: dict[str, Any]) -> str:
    """What went wrong with a listed event: its mapping errors, else its last delivery error,
    else why it was skipped ('' when nothing did)."""
    if row["errors"]:
        return field_errors(row["errors"])
    return str(row["last_error"] or row["note"] or "")


def utc_text(ts: float | None) -> str:
    """UNIX seconds as `2026-11-25 13:50:22` (UTC), as the CLI and the console show times."""
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def event_state(row: dict[str, Any]) -> str:
    """An event row's state as people read it: skipped, failed, pending, scheduled (every
    pending delivery is due later, none tried), delivered, cancelled (every delivery was),
    dead, or accepted (no delivery at all: a webhook that only cancelled)."""
    if row["status"] != EventStatus.ACCEPTED:
        return str(row["status"])
    if row["dead"]:
        return DeliveryStatus.DEAD
    if row["pending"] or row.get("looking"):  # a delivery, or a lookup to make first
        if not row.get("looking") and row["pending"] == row.get(SCHEDULED):
            return SCHEDULED
        return DeliveryStatus.PENDING
    cancelled = row.get(DeliveryStatus.CANCELLED) or 0
    if cancelled and cancelled == row.get("total"):
        return DeliveryStatus.CANCELLED
    if not row.get("total"):  # nothing to deliver: a webhook that only cancelled
        return str(EventStatus.ACCEPTED)
    return DeliveryStatus.DELIVERED


def shown_state(event: dict[str, Any], now: float | None = None) -> str:
    """`event_state` of an event as `event()` returns it (deliveries listed, not counted);
    with `now`, scheduled when every pending delivery is (`is_scheduled`)."""
    ds = event["deliveries"]
    looking = any(x["status"] == LookupStatus.PENDING for x in event.get("lookups", ()))
    return event_state({
        "status": event["status"], "looking": looking, "total": len(ds),
        **{s: sum(d["status"] == s for d in ds) for s in DeliveryStatus},
        SCHEDULED: sum(is_scheduled(d, now) for d in ds)})


def is_scheduled(delivery: dict[str, Any], now: float | None) -> bool:
    """A delivery row that is pending, never tried, and due after `now` (None: never)."""
    return (now is not None and delivery["status"] == DeliveryStatus.PENDING
            and not delivery["attempts"] and delivery["next_at"] > now)


def cancelled_by_event(delivery: dict[str, Any]) -> int | None:
    """The event whose `cancel:` cancelled a delivery (None: not one, or an operator did)."""
    if delivery["status"] != DeliveryStatus.CANCELLED:
        return None
    return cancelling_event(delivery.get("last_error"))


def schedule_text(delivery: dict[str, Any], now: float | None) -> str | None:
    """What `relay show` and the event page say of a delivery's schedule: "scheduled for
    <time> UTC (<why>)" while it is to come; the why alone once it came due or was acted on;
    None for one sent at once."""
    why = delivery.get("schedule")
    if is_scheduled(delivery, now):
        return f"scheduled for {utc_text(delivery['next_at'])} UTC" + (f" ({why})" if why else "")
    return f"schedule: {why}" if why else None


def why_not(delivery: dict[str, Any] | None, now: float) -> str:
    """Why an operator's send-now or cancel did nothing to a delivery (None: no such id),
    and what to do instead."""
    if delivery is None:
        return "no such delivery (ids are in `relay show EVENT_ID` and on the event's page)"
    status = delivery["status"]
    if status == DeliveryStatus.DELIVERED:
        return "already delivered: nothing is left to send or cancel"
    if status == DeliveryStatus.DEAD:
        return (f"dead: it gave up ({delivery.get('last_error') or 'no error recorded'}); "
                f"replay event {delivery['event_id']} to queue it again")
    if status == DeliveryStatus.CANCELLED:
        return f"already {delivery.get('last_error') or 'cancelled'}"
    lease = delivery.get("lease_until")
    if lease is not None and lease > now:
        return ("in flight: a worker is calling Engati with it right now; its outcome is "
                "recorded as it comes")
    return f"{status}, and changed meanwhile: look again and retry"
