"""The history in SQL, for operators: reading events and failures, replaying, purging.

Functions over a connection, so that `SqlStore` (sql.py) chooses the transaction: a read
transaction for the reads, a write transaction for the rest. SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from relay.mapping import Result
from relay.model import DeliveryStatus, EventStatus, LookupStatus
from relay.store import cancels, lookups, search
from relay.store.rows import delivery_row, due_at, errors_json, rule_text, storable
from relay.store.tables import attempts, deliveries, events, refusals
from relay.store.tables import lookups as lookups_table

if TYPE_CHECKING:
    from typing import TypeAlias

    Query: TypeAlias = sa.Select[*tuple[Any, ...]]

_D = deliveries.c


def event(conn: sa.Connection, event_id: int) -> dict[str, Any] | None:
    row = conn.execute(sa.select(events).where(events.c.id == event_id)).mappings().first()
    if row is None:
        return None
    found = dict(row)
    found["deliveries"] = [dict(d) for d in conn.execute(
        sa.select(deliveries).where(_D.event_id == event_id).order_by(_D.id)).mappings()]
    by_delivery: dict[int, list[dict[str, Any]]] = {d["id"]: [] for d in found["deliveries"]}
    for a in conn.execute(
            sa.select(attempts).where(attempts.c.delivery_id.in_(list(by_delivery)))
            .order_by(attempts.c.id)).mappings():
        by_delivery[a["delivery_id"]].append(dict(a))
    for d in found["deliveries"]:
        d["attempt_log"] = by_delivery[d["id"]]
    found["lookups"] = lookups.of_event(conn, event_id)
    return found


def delivery(conn: sa.Connection, delivery_id: int) -> dict[str, Any] | None:
    row = conn.execute(sa.select(deliveries).where(_D.id == delivery_id)).mappings().first()
    if row is None:
        return None
    found = dict(row)
    found["attempt_log"] = [dict(a) for a in conn.execute(
        sa.select(attempts).where(attempts.c.delivery_id == delivery_id)
        .order_by(attempts.c.id)).mappings()]
    return found


def events_query(*, status: str | None, mapping: str | None, since: float | None,
                 phone: str | None, before: int | None, limit: int,
                 phones: tuple[str, ...] = (), text: str | None = None,
                 dialect: str = "postgresql", now: float | None = None) -> Query:
    """The query of `Store.events` (see base.py); search.py holds the searches."""
    mine = _D.event_id == events.c.id
    later = scheduled(now)

    def count(*where: Any) -> Any:
        # Correlated, so only the page's events are counted, however long the history.
        return sa.select(sa.func.count()).where(mine, *where).scalar_subquery()

    last_error = (sa.select(_D.last_error).where(mine, _D.last_error.is_not(None))
                  .order_by(_D.updated_at.desc()).limit(1).scalar_subquery())
    # Lookups still to fetch (a mapping with `lookup:`): the event is pending until they are.
    looking = _looking()
    query = (
        sa.select(events.c.id, events.c.mapping, events.c.received_at, events.c.status,
                  events.c.errors, events.c.note, count().label("total"),
                  *(count(_D.status == s).label(s) for s in DeliveryStatus),
                  count(later).label(SCHEDULED),
                  sa.select(sa.func.min(_D.next_at)).where(mine, later)
                  .scalar_subquery().label("scheduled_at"),
                  sa.select(sa.func.count()).where(looking).scalar_subquery().label("looking"),
                  last_error.label("last_error"))
        .order_by(events.c.id.desc()).limit(limit)
    )
    query = narrow(query, mapping, since)
    if before is not None:  # the next page
        query = query.where(events.c.id < before)
    if phones or phone:
        digits = "".join(ch for ch in phone or "" if ch.isdigit())
        query = query.where(search.phone_clause(tuple(phones), digits))
    if status in (EventStatus.ACCEPTED, EventStatus.SKIPPED, EventStatus.FAILED):
        query = query.where(events.c.status == status)
    elif status == DeliveryStatus.PENDING:
        query = query.where(sa.or_(sa.exists().where(mine, _D.status == status),
                                   sa.exists().where(looking)))
    elif status in (DeliveryStatus.DEAD, DeliveryStatus.CANCELLED):
        query = query.where(sa.exists().where(mine, _D.status == status))
    elif status == SCHEDULED:
        query = query.where(sa.exists().where(mine, later))
    elif status == DeliveryStatus.DELIVERED:
        # Delivered but for what was cancelled; an event whose every delivery was cancelled
        # is not (it shows as cancelled).
        final = (DeliveryStatus.DELIVERED, DeliveryStatus.CANCELLED)
        query = query.where(events.c.status == EventStatus.ACCEPTED,
                            ~sa.exists().where(mine, _D.status.not_in(final)),
                            sa.or_(sa.exists().where(mine, _D.status == DeliveryStatus.DELIVERED),
                                   ~sa.exists().where(mine)),
                            ~sa.exists().where(looking))
    if text is None:
        return query
    alone = not (status or mapping or since is not None or phone or phones)
    # Every other filter in each of the text's queries, and their pages joined in one.
    found = [query.where(clause) for clause in
             search.text_clauses(dialect, text, (limit, before) if alone else None)]
    if len(found) == 1:
        return found[0]
    pages = sa.union_all(*found).subquery()
    return sa.select(pages).order_by(pages.c.id.desc()).limit(limit)


SCHEDULED = "scheduled"  # a listing's state and filter, not a status of its own (scheduled())


def scheduled(now: float | None) -> sa.ColumnElement[bool]:
    """The condition of a scheduled delivery: pending, never tried, due after `now` (a
    delivery's schedule or quiet hours put it off; nothing is, without a `now`)."""
    if now is None:
        return sa.false()
    return sa.and_(_D.status == DeliveryStatus.PENDING, _D.attempts == 0, _D.next_at > now)


def failures(conn: sa.Connection, limit: int) -> list[dict[str, Any]]:
    failed = conn.execute(
        sa.select(events.c.id.label("event_id"), events.c.mapping, events.c.errors,
                  events.c.received_at.label("at"))
        .where(events.c.status == EventStatus.FAILED).order_by(events.c.id.desc())
        .limit(limit)).mappings().all()
    dead = conn.execute(
        sa.select(_D.event_id, _D.mapping, _D.last_error, _D.failure, _D.updated_at.label("at"))
        .where(_D.status == DeliveryStatus.DEAD).order_by(_D.updated_at.desc())
        .limit(limit)).mappings().all()
    refused = conn.execute(
        sa.select(refusals.c.mapping, refusals.c.sample.label("reason"),
                  refusals.c.last_at.label("at"), refusals.c.count)
        .order_by(refusals.c.last_at.desc()).limit(limit)).mappings().all()
    items = [{**row, "kind": "failed"} for row in failed]
    items += [{**row, "kind": "dead"} for row in dead]
    items += [{**row, "kind": "refused", "event_id": None} for row in refused]
    return sorted(items, key=lambda item: item["at"], reverse=True)


def queue_stats(conn: sa.Connection, now: float) -> tuple[int, float, int]:
    pending = conn.execute(sa.select(sa.func.count())
                           .where(_D.status == DeliveryStatus.PENDING)).scalar_one()
    dead = conn.execute(sa.select(sa.func.count())
                        .where(_D.status == DeliveryStatus.DEAD)).scalar_one()
    return pending, waited(conn, now) or 0.0, dead


def waited(conn: sa.Connection, now: float) -> float | None:
    """How long the oldest pending delivery has waited since it was first due (None: none
    is due). One scheduled for later is not waiting: its `created_at` is its first due time,
    in the future, and would make the age negative. (Not `next_at <= now`: a delivery
    between retries, due again later, is still waiting.)"""
    oldest: float | None = conn.execute(
        sa.select(sa.func.min(_D.created_at))
        .where(sa.text("deliveries.status = 'pending'"), _D.created_at <= now)).scalar()
    return None if oldest is None else max(0.0, now - oldest)


def schedule_stats(conn: sa.Connection, now: float) -> tuple[int, int]:
    """(scheduled deliveries: pending, never tried, due after `now`; cancelled ones)."""
    # The statuses written out: SQLite uses a partial index only for a WHERE clause that
    # visibly implies the index's (deliveries_due, deliveries_cancelled).
    later = conn.execute(sa.select(sa.func.count()).where(
        sa.text("deliveries.status = 'pending'"), _D.next_at > now,
        _D.attempts == 0)).scalar_one()
    cancelled = conn.execute(sa.select(sa.func.count()).select_from(deliveries).where(
        sa.text("deliveries.status = 'cancelled'"))).scalar_one()
    return later, cancelled


def replayable(conn: sa.Connection, *, dead: bool, failed: bool, mapping: str | None,
               since: float | None) -> list[int]:
    ids: set[int] = set()
    if dead:
        query = (sa.select(_D.event_id).distinct()
                 .join(events, events.c.id == _D.event_id)
                 .where(_D.status == DeliveryStatus.DEAD))
        ids.update(conn.execute(narrow(query, mapping, since)).scalars())
    if failed:
        query = sa.select(events.c.id).where(events.c.status == EventStatus.FAILED)
        ids.update(conn.execute(narrow(query, mapping, since)).scalars())
    return sorted(ids)


def replay(conn: sa.Connection, insert_delivery: sa.Executable, event_id: int,
           result: Result, now: float) -> dict[str, int]:
    """`Store.replay` in one transaction; `insert_delivery` inserts a row of
    rows.delivery_row unless its dedup key is taken."""
    counts = {"queued": 0, "already_delivered": 0}
    existing = {row.item: row for row in conn.execute(
        sa.select(deliveries).where(_D.event_id == event_id))}
    # The key stays only while the status does: another event may hold it under the new
    # status (a resend skipped where this one failed).
    status = EventStatus.of(result.status)
    conn.execute(events.update().where(events.c.id == event_id).values(
        status=status, errors=errors_json(result.errors), note=result.skipped,
        dedup_key=sa.case((events.c.status == status, events.c.dedup_key), else_=None)))
    if result.lookups:
        mapping = conn.execute(sa.select(events.c.mapping)
                               .where(events.c.id == event_id)).scalar_one()
        return lookups.replay(conn, event_id, mapping, result, now)
    for d in result.deliveries:
        before = existing.get(d.item)
        if before is not None and before.status == DeliveryStatus.DELIVERED:
            counts["already_delivered"] += 1
        elif before is not None and before.status == DeliveryStatus.CANCELLED:
            continue  # as final as a delivery: replay never calls what was cancelled
        elif before is None:
            mapping = conn.execute(sa.select(events.c.mapping)
                                   .where(events.c.id == event_id)).scalar_one()
            counts["queued"] += len(conn.execute(insert_delivery, cancels.stored_cancelled(
                conn, [delivery_row(event_id, mapping, d, now)])).all())
        else:
            due = due_at(d, now)
            conn.execute(deliveries.update().where(_D.id == before.id).values(
                flow_key=d.flow_key, channel=d.channel, phone=d.phone, rule=rule_text(d),
                attributes=storable(d.attributes), status=DeliveryStatus.PENDING, next_at=due,
                attempts=0, lease_until=None, leased_by=None, created_at=due, updated_at=now,
                schedule=storable(d.why), cancel_key=storable(d.cancel_key)))
            counts["queued"] += 1
    return counts


def send_now(conn: sa.Connection, delivery_id: int, now: float) -> bool:
    """An operator's "send now" for a pending delivery not in flight: due at once, whatever
    its schedule or quiet hours said; whether it was."""
    done: int = conn.execute(deliveries.update().where(
        _D.id == delivery_id, _D.status == DeliveryStatus.PENDING,
        sa.or_(_D.lease_until.is_(None), _D.lease_until <= now),
    ).values(next_at=now, updated_at=now, schedule=SENT_NOW,
             # Due from now on: RELAY_MAX_AGE and the queue's age count from here.
             created_at=sa.case((_D.created_at > now, now), else_=_D.created_at))).rowcount
    return done == 1


SENT_NOW = "sent now by an operator"


def next_due(conn: sa.Connection, now: float) -> float | None:
    """When the earliest pending delivery not in flight is due (None: there is none)."""
    due: float | None = conn.execute(sa.select(sa.func.min(_D.next_at)).where(
        sa.text("deliveries.status = 'pending'"),  # written out: the partial index's clause
        sa.or_(_D.lease_until.is_(None), _D.lease_until <= now))).scalar()
    return due


def purgeable(before: float, include_failed: bool) -> list[sa.ColumnElement[bool]]:
    """What makes an event purgeable (see `Store.purge`)."""
    where = [events.c.received_at < before, _finished()]
    if not include_failed:
        where.append(events.c.status != EventStatus.FAILED)
    return where


def purge_batch(conn: sa.Connection, where: list[sa.ColumnElement[bool]], batch: int) -> int:
    """Delete up to `batch` purgeable events with their deliveries and attempts; how many."""
    ids = conn.execute(sa.select(events.c.id).where(*where)
                       .order_by(events.c.id).limit(batch)).scalars().all()
    if ids:
        done = sa.select(_D.id).where(_D.event_id.in_(ids), _D.status != DeliveryStatus.PENDING)
        conn.execute(attempts.delete().where(attempts.c.delivery_id.in_(done)))
        conn.execute(deliveries.delete().where(_D.event_id.in_(ids),
                                               _D.status != DeliveryStatus.PENDING))
        # Checked again: a replay may have queued one of them meanwhile.
        conn.execute(events.delete().where(events.c.id.in_(ids), _finished()))
    return len(ids)


def _finished() -> sa.ColumnElement[bool]:
    """Nothing of the event waits: no pending delivery, and no pending lookup."""
    return sa.and_(
        ~sa.exists().where(_D.event_id == events.c.id, _D.status == DeliveryStatus.PENDING),
        ~sa.exists().where(_looking()))


def _looking() -> sa.ColumnElement[bool]:
    """The condition of an event's lookups that are still to be fetched."""
    return sa.and_(lookups_table.c.event_id == events.c.id,
                   lookups_table.c.status == LookupStatus.PENDING)


def narrow(query: Query, mapping: str | None, since: float | None) -> Query:
    if mapping:
        query = query.where(events.c.mapping == mapping)
    if since is not None:
        query = query.where(events.c.received_at >= since)
    return query
