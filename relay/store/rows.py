"""Rows as the store writes them: what a webhook, its deliveries and its errors become, made
storable on both backends. Shared by the SQL and SQLite backends and the fake store."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from relay.errors import FieldError
from relay.mapping import Delivery, Fetch, Result
from relay.model import Attempt, DeliveryStatus, EventStatus, LookupStatus, Received

INT_MAX = 2**31 - 1  # the largest attempts.engati_code, an INTEGER column, holds


def event_key(result: Result) -> str | None:
    """The key a failed or skipped event is stored once under (accepted ones are
    deduplicated by their deliveries' keys)."""
    planned = result.deliveries or result.lookups
    key: str | None = storable(result.key) if not planned and result.key else None
    return key


def event_row(received: Received) -> dict[str, Any]:
    """An events row for a webhook as the store writes it."""
    result = received.result
    return {"mapping": received.mapping, "received_at": received.received_at,
            "status": EventStatus.of(result.status), "body": received.body,
            "headers": storable(received.headers), "query": storable(received.query),
            "errors": errors_json(result.errors), "note": result.skipped,
            "dedup_key": event_key(result)}


def delivery_row(event_id: int, mapping: str, d: Delivery, now: float) -> dict[str, Any]:
    """A deliveries row for a planned delivery, due at once or when its schedule says (then
    `created_at` too: RELAY_MAX_AGE and the queue's age count from when it is due)."""
    due = due_at(d, now)
    return {"event_id": event_id, "mapping": mapping, "item": d.item,
            "dedup_key": storable(d.dedup_key), "flow_key": d.flow_key,
            "channel": d.channel, "phone": d.phone, "attributes": storable(d.attributes),
            "status": DeliveryStatus.PENDING, "attempts": 0, "next_at": due, "created_at": due,
            "updated_at": now, "rule": rule_text(d), "schedule": storable(d.why),
            "cancel_key": storable(d.cancel_key), "last_error": None}


def due_at(d: Delivery, now: float) -> float:
    """When a planned delivery is first due: its schedule's time, never before `now`."""
    return now if d.send_at is None else max(d.send_at, now)


def lookup_row(event_id: int, mapping: str, f: Fetch, now: float) -> dict[str, Any]:
    """A lookups row for a planned fetch, due at once."""
    return {"event_id": event_id, "mapping": mapping, "item": f.item,
            "dedup_key": storable(f.dedup_key), "url": storable(f.url),
            "status": LookupStatus.PENDING, "attempts": 0, "next_at": now, "created_at": now,
            "updated_at": now, "tries": []}


def rule_text(d: Delivery) -> str | None:
    """The `rule` column of a delivery: which flow rule chose it, and why."""
    return None if d.rule is None else storable(d.rule.stored())


def errors_json(errors: tuple[FieldError, ...]) -> list[dict[str, str]] | None:
    """A result's field errors as the events row keeps them (None when there are none)."""
    found: list[dict[str, str]] = storable([e.to_dict() for e in errors])
    return found or None


def storable(value: Any) -> Any:
    """Values both backends store and every page can show: PostgreSQL refuses NUL characters
    in text and JSON, and nothing encodes a lone surrogate (JSON's "\\ud800") as UTF-8."""
    if isinstance(value, str):
        if not value.isascii():
            value = utf8(value)
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def utf8(text: str) -> str:
    """`text` with what UTF-8 cannot encode (lone surrogates) replaced."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def attempt_row(attempt: Attempt) -> Attempt:
    """An attempt as the store writes it: its error storable (it quotes Engati's text), and
    an Engati code the column cannot hold left out. Either, refused by the database, failed
    the batch of outcomes it came in, whose calls were then all made again."""
    error = None if attempt.error is None else storable(attempt.error)
    code = attempt.engati_code
    fits = code is None or -INT_MAX - 1 <= code <= INT_MAX
    if error is attempt.error and fits:
        return attempt
    return replace(attempt, error=error, engati_code=code if fits else None)
