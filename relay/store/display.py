"""Stored events as people read them: in the console and in the CLI's listings."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from relay.errors import field_errors
from relay.model import DeliveryStatus, EventStatus, LookupStatus
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
    """An event row's state as people read it: skipped, failed, pending, delivered or dead."""
    if row["status"] != EventStatus.ACCEPTED:
        return str(row["status"])
    if row["dead"]:
        return DeliveryStatus.DEAD
    waiting = row["pending"] or row.get("looking")  # a delivery, or a lookup to make first
    return DeliveryStatus.PENDING if waiting else DeliveryStatus.DELIVERED


def shown_state(event: dict[str, Any]) -> str:
    """`event_state` of an event as `event()` returns it (deliveries listed, not counted)."""
    statuses = [d["status"] for d in event["deliveries"]]
    looking = any(x["status"] == LookupStatus.PENDING for x in event.get("lookups", ()))
    return event_state({"status": event["status"], "dead": DeliveryStatus.DEAD in statuses,
                        "pending": DeliveryStatus.PENDING in statuses, "looking": looking})
