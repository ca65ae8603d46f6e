"""The store contract: one class over SQLAlchemy Core, for SQLite and PostgreSQL alike.

An event and its planned deliveries are written in one transaction, before the sender is
answered; the worker claims due deliveries with a lease, so that a crashed worker's claims
are taken over once the lease runs out (at-least-once: a crash may repeat the call that was in
flight, never skip one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import alembic.command
import alembic.config
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql, sqlite

from relay.errors import FieldError, StoreUnavailable
from relay.mapping import Result
from relay.tables import attempts, bots, deliveries, events, refusals

_UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError)
# What `events(status=...)` filters on: an event's own status, or its deliveries' state.
STATUSES = ("accepted", "skipped", "failed", "pending", "delivered", "dead")


@dataclass(frozen=True)
class Receipt:
    """What became of an inbound webhook."""

    status: str  # accepted | duplicate | skipped | failed
    event_id: int
    deliveries: int = 0


@dataclass(frozen=True)
class Claimed:
    """A delivery a worker holds until it records the outcome or the lease runs out."""

    id: int
    event_id: int
    mapping: str
    flow_key: str
    channel: str
    phone: str
    attributes: dict[str, Any]
    attempts: int
    created_at: float


@dataclass(frozen=True)
class Attempt:
    """One call to Engati, as recorded."""

    started_at: float
    duration_ms: float
    outcome: str  # delivered | retry | dead
    http_status: int | None = None
    engati_code: int | None = None
    error: str | None = None


class Store:
    def __init__(self, url: str, *, timeout: float = 5.0):
        self.url = url
        self.engine = _engine(url, timeout)
        self._insert = postgresql.insert if self.engine.dialect.name == "postgresql" else (
            sqlite.insert)

    def upgrade(self) -> None:
        """Bring the schema to the latest migration (an empty database gets every one)."""
        config = alembic.config.Config()
        config.set_main_option("script_location", "relay:migrations")
        with self._tx() as conn:
            config.attributes["connection"] = conn
            alembic.command.upgrade(config, "head")

    def ping(self) -> None:
        with self._tx() as conn:
            conn.execute(sa.select(sa.func.count()).select_from(events).where(sa.false()))

    def dispose(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sa.Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except _UNAVAILABLE as exc:
            # The driver's own words (e.g. "database is locked"), never the SQL or its values.
            raise StoreUnavailable(f"the database is unavailable: {exc.orig}") from exc

    # --- inbound ---------------------------------------------------------------------------

    def accept(
        self,
        mapping: str,
        raw: bytes,
        headers: dict[str, str],
        query: dict[str, Any],
        result: Result,
        now: float,
    ) -> Receipt:
        """Store an event and its planned deliveries in one transaction.

        When every planned delivery's dedup key was accepted before, nothing is stored and
        the first event's id comes back as a duplicate.
        """
        try:
            with self._tx() as conn:
                event_id = conn.execute(
                    events.insert()
                    .values(mapping=mapping, received_at=now, status=_event_status(result),
                            body=raw, headers=_storable(headers), query=_storable(query),
                            errors=_errors(result.errors), note=result.skipped)
                    .returning(events.c.id)
                ).scalar_one()
                inserted = self._plan(conn, event_id, mapping, result, now)
                if result.deliveries and not inserted:
                    raise _AllDuplicates
        except _AllDuplicates:
            key = _storable(result.deliveries[0].dedup_key)
            with self._tx() as conn:
                first = conn.execute(
                    sa.select(deliveries.c.event_id)
                    .where(deliveries.c.mapping == mapping, deliveries.c.dedup_key == key)
                ).scalar_one()
            return Receipt("duplicate", first)
        return Receipt(_event_status(result), event_id, inserted)

    def _plan(self, conn: sa.Connection, event_id: int, mapping: str, result: Result,
              now: float) -> int:
        inserted = 0
        for d in result.deliveries:
            row = conn.execute(
                self._insert(deliveries)
                .values(event_id=event_id, mapping=mapping, item=d.item,
                        dedup_key=_storable(d.dedup_key),
                        flow_key=d.flow_key, channel=d.channel, phone=d.phone,
                        attributes=_storable(d.attributes), status="pending", attempts=0,
                        next_at=now, created_at=now, updated_at=now)
                .on_conflict_do_nothing()
                .returning(deliveries.c.id)
            ).scalar_one_or_none()
            inserted += row is not None
        return inserted

    # --- worker ----------------------------------------------------------------------------

    def claim(self, worker: str, limit: int, now: float, lease: float) -> list[Claimed]:
        """Lease up to `limit` due deliveries to `worker`, oldest first."""
        due = (
            sa.select(deliveries.c.id)
            .where(deliveries.c.status == "pending", deliveries.c.next_at <= now,
                   sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until <= now))
            .order_by(deliveries.c.next_at)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite serialises writers anyway
        )
        with self._tx() as conn:
            rows = conn.execute(
                deliveries.update()
                .where(deliveries.c.id.in_(due.scalar_subquery()))
                .values(lease_until=now + lease, leased_by=worker)
                .returning(deliveries.c.id, deliveries.c.event_id, deliveries.c.mapping,
                           deliveries.c.flow_key, deliveries.c.channel, deliveries.c.phone,
                           deliveries.c.attributes, deliveries.c.attempts,
                           deliveries.c.created_at)
            ).all()
        return sorted((Claimed(*row) for row in rows), key=lambda c: c.id)

    def record(self, claimed: Claimed, worker: str, attempt: Attempt, next_at: float | None,
               now: float) -> bool:
        """Record an attempt and its outcome; False when the lease had been lost."""
        status = {"delivered": "delivered", "dead": "dead"}.get(attempt.outcome, "pending")
        condition = [deliveries.c.id == claimed.id, deliveries.c.status == "pending"]
        if attempt.outcome != "delivered":  # a success always counts, even after a lost lease
            condition.append(deliveries.c.leased_by == worker)
        with self._tx() as conn:
            conn.execute(attempts.insert().values(
                delivery_id=claimed.id, started_at=attempt.started_at,
                duration_ms=attempt.duration_ms, http_status=attempt.http_status,
                engati_code=attempt.engati_code, outcome=attempt.outcome, error=attempt.error,
                worker=worker))
            updated = conn.execute(
                deliveries.update().where(*condition).values(
                    status=status, attempts=deliveries.c.attempts + 1,
                    next_at=next_at if next_at is not None else now, lease_until=None,
                    leased_by=None, updated_at=now, last_error=attempt.error)
            ).rowcount
        return bool(updated)

    def defer(self, claimed: Claimed, worker: str, next_at: float, now: float) -> None:
        """Give a delivery back untried, due again at `next_at` (its bot is paced or paused)."""
        with self._tx() as conn:
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id == claimed.id, deliveries.c.leased_by == worker)
                .values(next_at=next_at, lease_until=None, leased_by=None, updated_at=now))

    # --- per-bot pacing, shared by every worker ----------------------------------------------

    def reserve(self, bot: str, interval: float, now: float,
                horizon: float) -> tuple[float, bool]:
        """The time the next call to `bot` may start, and whether it was reserved.

        A slot is reserved (the bot's next slot moves `interval` on) only when it starts within
        `horizon` seconds; later ones are only reported, so that waiting costs no slots.
        """
        with self._tx() as conn:
            row = self._bot(conn, bot)
            slot = max(now, row.next_at, row.paused_until)
            if slot - now > horizon:
                return slot, False
            conn.execute(bots.update().where(bots.c.bot == bot).values(next_at=slot + interval))
        return slot, True

    def pause(self, bot: str, until: float) -> None:
        """No call to `bot` before `until` (Engati answered 429 with Retry-After)."""
        with self._tx() as conn:
            row = self._bot(conn, bot)
            if until > row.paused_until:
                conn.execute(bots.update().where(bots.c.bot == bot)
                             .values(paused_until=until))

    def paused_until(self, bot: str) -> float:
        """When a pause of `bot` ends (0 when it was never paused)."""
        with self._tx() as conn:
            until = conn.execute(sa.select(bots.c.paused_until)
                                 .where(bots.c.bot == bot)).scalar_one_or_none()
        return until or 0.0

    def pauses(self, now: float) -> dict[str, float]:
        """Bots paused beyond `now`, with the end of each pause."""
        with self._tx() as conn:
            return dict(conn.execute(sa.select(bots.c.bot, bots.c.paused_until)
                                     .where(bots.c.paused_until > now)).all())

    def _bot(self, conn: sa.Connection, bot: str) -> Any:
        conn.execute(self._insert(bots).values(bot=bot, next_at=0.0, paused_until=0.0)
                     .on_conflict_do_nothing())
        return conn.execute(sa.select(bots).where(bots.c.bot == bot)
                            .with_for_update()).one()

    def release(self, ids: list[int], worker: str) -> None:
        """Give back leased deliveries untried (a worker shutting down)."""
        if not ids:
            return
        with self._tx() as conn:
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id.in_(ids), deliveries.c.leased_by == worker)
                .values(lease_until=None, leased_by=None))

    # --- operators -------------------------------------------------------------------------

    def event(self, event_id: int) -> dict[str, Any] | None:
        """An event with its deliveries, each with its attempts."""
        with self._tx() as conn:
            row = conn.execute(sa.select(events).where(events.c.id == event_id)).mappings().first()
            if row is None:
                return None
            found = dict(row)
            found["deliveries"] = [dict(d) for d in conn.execute(
                sa.select(deliveries).where(deliveries.c.event_id == event_id)
                .order_by(deliveries.c.id)).mappings()]
            by_delivery: dict[int, list[dict[str, Any]]] = {
                d["id"]: [] for d in found["deliveries"]}
            for a in conn.execute(
                sa.select(attempts).where(attempts.c.delivery_id.in_(list(by_delivery)))
                .order_by(attempts.c.id)).mappings():
                by_delivery[a["delivery_id"]].append(dict(a))
        for d in found["deliveries"]:
            d["attempt_log"] = by_delivery[d["id"]]
        return found

    def events(self, *, status: str | None = None, mapping: str | None = None,
               since: float | None = None, phone: str | None = None,
               before: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Recent events, newest first, with their deliveries counted by status.

        `status` is an event status (accepted, skipped, failed) or a delivery state an event
        has (pending, delivered: all delivered, dead: any dead).
        """
        d = deliveries.c
        mine = d.event_id == events.c.id

        def count(*where: Any) -> Any:
            # Correlated, so only the page's events are counted, however long the history.
            return sa.select(sa.func.count()).where(mine, *where).scalar_subquery()

        last_error = (sa.select(d.last_error).where(mine, d.last_error.is_not(None))
                      .order_by(d.updated_at.desc()).limit(1).scalar_subquery())
        query = (
            sa.select(events.c.id, events.c.mapping, events.c.received_at, events.c.status,
                      events.c.errors, events.c.note, count().label("total"),
                      *(count(d.status == s).label(s) for s in ("pending", "delivered", "dead")),
                      last_error.label("last_error"))
            .order_by(events.c.id.desc()).limit(limit)
        )
        if mapping:
            query = query.where(events.c.mapping == mapping)
        if since is not None:
            query = query.where(events.c.received_at >= since)
        if before is not None:  # the next page
            query = query.where(events.c.id < before)
        if phone:
            digits = "".join(ch for ch in phone if ch.isdigit())
            query = query.where(sa.exists().where(mine, d.phone.contains(digits)))
        if status in ("accepted", "skipped", "failed"):
            query = query.where(events.c.status == status)
        elif status in ("pending", "dead"):
            query = query.where(sa.exists().where(mine, d.status == status))
        elif status == "delivered":
            query = query.where(events.c.status == "accepted",
                                ~sa.exists().where(mine, d.status != "delivered"))
        with self._tx() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def replay(self, event_id: int, result: Result, now: float) -> dict[str, int]:
        """Apply a fresh mapping result to a stored event and queue what is not delivered.

        A delivery that already succeeded is never queued again.
        """
        counts = {"queued": 0, "already_delivered": 0}
        with self._tx() as conn:
            existing = {row.item: row for row in conn.execute(
                sa.select(deliveries).where(deliveries.c.event_id == event_id))}
            conn.execute(events.update().where(events.c.id == event_id).values(
                status=_event_status(result), errors=_errors(result.errors), note=result.skipped))
            for d in result.deliveries:
                before = existing.get(d.item)
                if before is not None and before.status == "delivered":
                    counts["already_delivered"] += 1
                    continue
                if before is None:
                    mapping = conn.execute(sa.select(events.c.mapping)
                                           .where(events.c.id == event_id)).scalar_one()
                    counts["queued"] += self._plan(conn, event_id, mapping, Result((d,)), now)
                    continue
                conn.execute(deliveries.update().where(deliveries.c.id == before.id).values(
                    flow_key=d.flow_key, channel=d.channel, phone=d.phone,
                    attributes=_storable(d.attributes), status="pending", next_at=now,
                    attempts=0,
                    lease_until=None, leased_by=None, created_at=now, updated_at=now))
                counts["queued"] += 1
        return counts

    def purge(self, before: float, batch: int = 1000) -> int:
        """Delete finished events received before `before`, with their deliveries and
        attempts; never one with a pending delivery. Batch by batch, each its own short
        transaction, so that the queue is never stalled."""
        d = deliveries.c
        finished = ~sa.exists().where(d.event_id == events.c.id, d.status == "pending")
        total = 0
        with self._tx() as conn:
            conn.execute(refusals.delete().where(refusals.c.at < before))
        while True:
            with self._tx() as conn:
                ids = conn.execute(
                    sa.select(events.c.id).where(events.c.received_at < before, finished)
                    .order_by(events.c.id).limit(batch)).scalars().all()
                if not ids:
                    return total
                done = sa.select(d.id).where(d.event_id.in_(ids), d.status != "pending")
                conn.execute(attempts.delete().where(attempts.c.delivery_id.in_(done)))
                conn.execute(deliveries.delete().where(d.event_id.in_(ids),
                                                       d.status != "pending"))
                # Checked again: a replay may have queued one of them meanwhile.
                conn.execute(events.delete().where(events.c.id.in_(ids), finished))
            total += len(ids)

    def refuse(self, mapping: str, reason: str, now: float) -> None:
        """Note a request refused for its signature (why, never what it carried)."""
        with self._tx() as conn:
            conn.execute(refusals.insert().values(mapping=mapping, at=now,
                                                  reason=_storable(reason)[:500]))

    def failures(self, limit: int = 500) -> list[dict[str, Any]]:
        """Recent failed mappings, dead deliveries and refused signatures, newest first."""
        d = deliveries.c
        with self._tx() as conn:
            failed = conn.execute(
                sa.select(events.c.id.label("event_id"), events.c.mapping, events.c.errors,
                          events.c.received_at.label("at"))
                .where(events.c.status == "failed").order_by(events.c.id.desc())
                .limit(limit)).mappings().all()
            dead = conn.execute(
                sa.select(d.event_id, d.mapping, d.last_error, d.updated_at.label("at"))
                .where(d.status == "dead").order_by(d.updated_at.desc())
                .limit(limit)).mappings().all()
            refused = conn.execute(
                sa.select(refusals.c.mapping, refusals.c.reason, refusals.c.at)
                .order_by(refusals.c.at.desc()).limit(limit)).mappings().all()
        items = [{**row, "kind": "failed"} for row in failed]
        items += [{**row, "kind": "dead"} for row in dead]
        items += [{**row, "kind": "refused", "event_id": None} for row in refused]
        return sorted(items, key=lambda item: item["at"], reverse=True)

    def queue_stats(self, now: float) -> tuple[int, float, int]:
        """(pending deliveries, age of the oldest pending one in seconds, dead deliveries)."""
        d = deliveries.c
        with self._tx() as conn:
            pending, oldest = conn.execute(
                sa.select(sa.func.count(), sa.func.min(d.created_at))
                .where(d.status == "pending")).one()
            dead = conn.execute(sa.select(sa.func.count()).where(d.status == "dead")).scalar()
        return pending, (now - oldest) if oldest is not None else 0.0, dead

    def replayable(self, *, dead: bool, failed: bool, mapping: str | None,
                   since: float | None) -> list[int]:
        """Ids of events with dead deliveries and/or events whose mapping failed."""
        ids: set[int] = set()
        with self._tx() as conn:
            if dead:
                query = (sa.select(deliveries.c.event_id).distinct()
                         .join(events, events.c.id == deliveries.c.event_id)
                         .where(deliveries.c.status == "dead"))
                ids.update(conn.execute(_narrow(query, mapping, since)).scalars())
            if failed:
                query = sa.select(events.c.id).where(events.c.status == "failed")
                ids.update(conn.execute(_narrow(query, mapping, since)).scalars())
        return sorted(ids)


def event_state(row: dict[str, Any]) -> str:
    """An event row's state as people read it: skipped, failed, pending, delivered or dead."""
    if row["status"] != "accepted":
        return row["status"]
    if row["dead"]:
        return "dead"
    return "pending" if row["pending"] else "delivered"


class _AllDuplicates(Exception):
    """Rolls back an event whose every delivery was accepted before."""


def _narrow(query: sa.Select, mapping: str | None, since: float | None) -> sa.Select:
    if mapping:
        query = query.where(events.c.mapping == mapping)
    if since is not None:
        query = query.where(events.c.received_at >= since)
    return query


def _event_status(result: Result) -> str:
    return {"planned": "accepted"}.get(result.status, result.status)


def _errors(errors: tuple[FieldError, ...]) -> list[dict[str, str]] | None:
    return _storable([e.to_dict() for e in errors]) or None


def _storable(value: Any) -> Any:
    """Values both backends store: PostgreSQL refuses NUL characters in text and JSON."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def _engine(url: str, timeout: float) -> sa.Engine:
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"timeout": timeout})

    @sa_event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below); the driver's own transaction handling would
        # start transactions as readers and fail to upgrade them under contention.
        dbapi_connection.isolation_level = None
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON",
                       f"busy_timeout={int(timeout * 1000)}"):
            dbapi_connection.execute(f"PRAGMA {pragma}")

    @sa_event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # Take the write lock up front: two writers never deadlock, they queue.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
