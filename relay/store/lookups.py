"""Lookups in SQL (relay/lookup/ runs them): claiming the due ones, recording each attempt
and, once one is fetched, inserting the delivery its answer maps to in the same transaction,
with the event's status brought up to date. Functions over a connection, as history.py's
are; SQLite and PostgreSQL alike (a lookup is a network call: no hot path to shave).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from relay.errors import FieldError
from relay.mapping import Result
from relay.model import ClaimedLookup, DeliveryStatus, EventStatus, Looked, LookupStatus
from relay.store.cancels import stored_cancelled
from relay.store.rows import delivery_row, errors_json, lookup_row, storable
from relay.store.tables import deliveries, events, lookups

_L = lookups.c
KEPT_TRIES = 20  # attempts a lookup's row keeps (RELAY_MAX_ATTEMPTS may allow more)


def claim(conn: sa.Connection, worker: str, limit: int, now: float,
          lease: float) -> list[ClaimedLookup]:
    due = (sa.select(_L.id)
           .where(_L.status == LookupStatus.PENDING, _L.next_at <= now,
                  sa.or_(_L.lease_until.is_(None), _L.lease_until <= now))
           .order_by(_L.next_at).limit(limit).with_for_update(skip_locked=True))
    ids = conn.execute(lookups.update().where(_L.id.in_(due.scalar_subquery()))
                       .values(lease_until=now + lease, leased_by=worker)
                       .returning(_L.id)).scalars().all()
    if not ids:
        return []
    rows = conn.execute(
        sa.select(_L.id, _L.event_id, _L.mapping, _L.item, _L.url, _L.attempts, _L.created_at,
                  _L.lease_until, _L.tries, events.c.body, events.c.headers, events.c.query)
        .join(events, events.c.id == _L.event_id).where(_L.id.in_(ids)).order_by(_L.id))
    return [ClaimedLookup(**row._mapping) for row in rows]


def finish(conn: sa.Connection, insert_delivery: sa.Executable, looked: Looked, worker: str,
           now: float) -> bool:
    """Record an attempt of a lookup this worker holds; False (nothing written) when its
    lease was lost meanwhile: another worker has it now."""
    row = conn.execute(sa.select(_L.event_id, _L.mapping, _L.status, _L.leased_by, _L.tries)
                       .where(_L.id == looked.lookup_id).with_for_update()).first()
    if row is None or row.status != LookupStatus.PENDING or row.leased_by != worker:
        return False
    tries = [*row.tries, storable(looked.tried)][-KEPT_TRIES:]
    conn.execute(lookups.update().where(_L.id == looked.lookup_id).values(
        status=looked.status, attempts=_L.attempts + 1, tries=tries,
        next_at=looked.next_at if looked.next_at is not None else now, lease_until=None,
        leased_by=None, updated_at=now, last_error=storable(looked.error)))
    result = looked.result
    if result is not None and result.deliveries:
        conn.execute(insert_delivery, stored_cancelled(conn, [
            delivery_row(row.event_id, row.mapping, d, now) for d in result.deliveries]))
    if looked.status != LookupStatus.PENDING:
        errors = result.errors if result is not None else ()
        if looked.status == LookupStatus.DEAD:
            errors = (FieldError("lookup", looked.error or "the lookup failed"),)
        _settle(conn, row.event_id, errors, result.skipped if result is not None else None)
    return True


def _settle(conn: sa.Connection, event_id: int, errors: tuple[FieldError, ...],
            skipped: str | None) -> None:
    """The event's status once one of its lookups finished: failed while any of them could
    not be fetched or mapped (replay tries again), accepted while one is pending or a
    delivery was planned, else skipped."""
    counts: dict[str, int] = dict(conn.execute(sa.select(_L.status, sa.func.count()).where(
        _L.event_id == event_id).group_by(_L.status)).all())
    current = conn.execute(sa.select(events.c.errors).where(
        events.c.id == event_id)).scalar_one()
    found = [*(current or []), *(errors_json(errors) or [])]
    if counts.get(LookupStatus.DEAD) or counts.get(LookupStatus.FAILED):
        status, note = EventStatus.FAILED, None
    elif counts.get(LookupStatus.PENDING) or conn.execute(sa.select(sa.func.count()).where(
            deliveries.c.event_id == event_id)).scalar_one():
        status, note = EventStatus.ACCEPTED, None
    else:
        status, note = EventStatus.SKIPPED, f"{skipped or 'filter'} (after the lookup)"
    conn.execute(events.update().where(events.c.id == event_id).values(
        status=status, errors=found or None, note=note))


def of_event(conn: sa.Connection, event_id: int) -> list[dict[str, Any]]:
    """An event's lookups, for its page: url, status, attempts and their tries."""
    return [dict(r) for r in conn.execute(
        sa.select(_L.id, _L.item, _L.url, _L.status, _L.attempts, _L.next_at, _L.last_error,
                  _L.tries, _L.created_at, _L.updated_at)
        .where(_L.event_id == event_id).order_by(_L.id)).mappings()]


def replay(conn: sa.Connection, event_id: int, mapping: str, result: Result,
           now: float) -> dict[str, int]:
    """Replay's part for a mapping with `lookup:`: every lookup that was not fetched or not
    mapped (or skipped) is fetched again, at once, under its new URL; one whose delivery
    died queues that delivery again; new items get a lookup."""
    counts = {"queued": 0, "already_delivered": 0}
    existing = {row.item: row for row in conn.execute(
        sa.select(_L.id, _L.item, _L.status).where(_L.event_id == event_id))}
    delivered = {row.item: row for row in conn.execute(
        sa.select(deliveries.c.id, deliveries.c.item, deliveries.c.status)
        .where(deliveries.c.event_id == event_id))}
    for fetch in result.lookups:
        before = existing.get(fetch.item)
        if before is None:
            conn.execute(lookups.insert(), [lookup_row(event_id, mapping, fetch, now)])
            counts["queued"] += 1
        elif before.status == LookupStatus.PENDING:
            continue
        elif before.status == LookupStatus.DONE and fetch.item in delivered:
            d = delivered[fetch.item]
            if d.status == DeliveryStatus.DELIVERED:
                counts["already_delivered"] += 1
            elif d.status == DeliveryStatus.DEAD:
                conn.execute(deliveries.update().where(deliveries.c.id == d.id).values(
                    status=DeliveryStatus.PENDING, next_at=now, attempts=0, lease_until=None,
                    leased_by=None, created_at=now, updated_at=now))
                counts["queued"] += 1
        else:
            conn.execute(lookups.update().where(_L.id == before.id).values(
                url=storable(fetch.url), status=LookupStatus.PENDING, attempts=0, next_at=now,
                lease_until=None, leased_by=None, created_at=now, updated_at=now))
            counts["queued"] += 1
    return counts
