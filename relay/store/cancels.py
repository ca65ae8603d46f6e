"""Cancellations in SQL: a webhook's `cancel:` cancels the pending deliveries that carry its
key (`schedule.key`), and is kept a while (`cancel.keep`) for a delivery that has not
arrived yet, which is then stored cancelled. Functions over a connection, as history.py's
are, for the SQL backend, replays and lookups; sqlite.py's hot path has the same statements
for the driver.

A delivery in flight (leased to a worker, its call under way) is not cancelled: it was
called, and its outcome is recorded as it comes. An operator cancels one delivery by id.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from relay.mapping.model import Cancellation
from relay.model import DeliveryStatus, Received
from relay.store.tables import cancels, deliveries

_C, _D = cancels.c, deliveries.c


def cancelled_by(event_id: int) -> str:
    """The `last_error` of a delivery a webhook cancelled (the console links the event)."""
    return f"cancelled by event {event_id}"


_CANCELLED_BY = re.compile(r"cancelled by event (\d+)")  # what cancelled_by writes


def cancelling_event(last_error: str | None) -> int | None:
    """The event a `last_error` of `cancelled_by` names (None: it is no such text)."""
    found = _CANCELLED_BY.fullmatch(last_error or "")
    return int(found.group(1)) if found else None


def kept(conn: sa.Connection, mapping: str, key: str, now: float) -> int | None:
    """The event whose cancellation of `key` in `mapping` is still kept (None: none is)."""
    found: int | None = conn.execute(
        sa.select(_C.event_id).where(_C.mapping == mapping, _C.key == key,
                                     _C.expires_at > now)).scalar()
    return found


def stored_cancelled(conn: sa.Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Delivery rows (rows.delivery_row) about to be inserted, those whose key a kept
    cancellation names made cancelled (a cancellation that arrived before its delivery)."""
    for row in rows:
        if row["cancel_key"] is not None:
            event_id = kept(conn, row["mapping"], row["cancel_key"], row["updated_at"])
            if event_id is not None:
                row.update(status=DeliveryStatus.CANCELLED, last_error=cancelled_by(event_id))
    return rows


def apply(conn: sa.Connection, insert: Any, event_id: int, mapping: str,
          wanted: tuple[Cancellation, ...], now: float) -> int:
    """Cancel what a webhook's `cancel:` names, and keep each cancellation for later
    deliveries (the newest wins); how many pending deliveries it cancelled."""
    done = 0
    for cancellation in wanted:
        targets = cancellation.mappings or (mapping,)
        for target in targets:
            conn.execute(insert(cancels).values(
                mapping=target, key=cancellation.key, event_id=event_id, created_at=now,
                expires_at=now + cancellation.keep).on_conflict_do_update(
                index_elements=["mapping", "key"],
                set_={"event_id": event_id, "created_at": now,
                      "expires_at": now + cancellation.keep}))
        done += conn.execute(deliveries.update().where(
            _D.mapping.in_(targets), _D.cancel_key == cancellation.key,
            _D.status == DeliveryStatus.PENDING,
            sa.or_(_D.lease_until.is_(None), _D.lease_until <= now),
        ).values(status=DeliveryStatus.CANCELLED, updated_at=now,
                 last_error=cancelled_by(event_id))).rowcount
    return done


def note(received: Received, count: int) -> str:
    """An event's note once its cancellations cancelled `count` deliveries: why it was
    skipped, if it was, then what it cancelled."""
    wanted, mapping = received.result.cancels, received.mapping
    keys = ", ".join(repr(c.key) for c in wanted[:3]) + (" ..." if len(wanted) > 3 else "")
    names = sorted({m for c in wanted for m in (c.mappings or (mapping,))})
    said = (f"cancel: key {keys} in {', '.join(names)}: {count} pending "
            f"deliver{'y' if count == 1 else 'ies'} cancelled")
    skipped = received.result.skipped
    return f"{skipped}; {said}" if skipped else said


def cancel_one(conn: sa.Connection, delivery_id: int, now: float) -> bool:
    """An operator's cancellation of one pending delivery not in flight; whether it was."""
    done: int = conn.execute(deliveries.update().where(
        _D.id == delivery_id, _D.status == DeliveryStatus.PENDING,
        sa.or_(_D.lease_until.is_(None), _D.lease_until <= now),
    ).values(status=DeliveryStatus.CANCELLED, updated_at=now,
             last_error=OPERATOR)).rowcount
    return done == 1


OPERATOR = "cancelled by an operator"


def prune(conn: sa.Connection, now: float) -> int:
    """Delete the cancellations kept no longer; how many."""
    gone: int = conn.execute(cancels.delete().where(_C.expires_at <= now)).rowcount
    return gone
