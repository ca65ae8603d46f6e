"""Reading and tidying the history, for operators: events, failures, replay, purge.

`Store` (store.py) inherits these; they share its connection handling (`_tx`).
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from relay.errors import FieldError
from relay.mapping import Result
from relay.store.tables import attempts, deliveries, events, refusals

# What `events(status=...)` filters on: an event's own status, or its deliveries' state.
STATUSES = ("accepted", "skipped", "failed", "pending", "delivered", "dead")


class History:
    """Operator queries and maintenance, mixed into `Store`, which provides these two."""

    def _tx(self) -> AbstractContextManager[sa.Connection]:
        raise NotImplementedError

    def _plan(self, conn: sa.Connection, event_id: int, mapping: str, result: Result,
              now: float) -> int:
        raise NotImplementedError
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
            # The key stays only while the status does: another event may hold it under the
            # new status (a resend skipped where this one failed).
            status = event_status(result)
            conn.execute(events.update().where(events.c.id == event_id).values(
                status=status, errors=errors_json(result.errors), note=result.skipped,
                dedup_key=sa.case((events.c.status == status, events.c.dedup_key),
                                  else_=None)))
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
                    attributes=storable(d.attributes), status="pending", next_at=now,
                    attempts=0,
                    lease_until=None, leased_by=None, created_at=now, updated_at=now))
                counts["queued"] += 1
        return counts

    def purge(self, before: float, *, include_failed: bool = False, dry_run: bool = False,
              batch: int = 1000) -> int:
        """Delete finished events received before `before`, with their deliveries and
        attempts, and the refusal counts of that time; never an event with a pending
        delivery, and a failed one (awaiting a replay) only with `include_failed`. Batch by
        batch, each its own short transaction, so that the queue is never stalled.
        `dry_run`: only count what would go. The number of events."""
        d = deliveries.c
        finished = ~sa.exists().where(d.event_id == events.c.id, d.status == "pending")
        purgeable = [events.c.received_at < before, finished]
        if not include_failed:
            purgeable.append(events.c.status != "failed")
        if dry_run:
            with self._tx() as conn:
                return conn.execute(sa.select(sa.func.count()).select_from(events)
                                    .where(*purgeable)).scalar_one()
        self.prune_refusals(before)
        total = 0
        while True:
            with self._tx() as conn:
                ids = conn.execute(sa.select(events.c.id).where(*purgeable)
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

    def prune_refusals(self, before: float) -> int:
        """Delete refusal counts last seen before `before`; how many rows went."""
        with self._tx() as conn:
            return conn.execute(refusals.delete().where(refusals.c.last_at < before)).rowcount

    def failures(self, limit: int = 500) -> list[dict[str, Any]]:
        """Recent failed mappings, dead deliveries and refused signatures (a row per mapping,
        minute and kind, with its `count`), newest first."""
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
                sa.select(refusals.c.mapping, refusals.c.sample.label("reason"),
                          refusals.c.last_at.label("at"), refusals.c.count)
                .order_by(refusals.c.last_at.desc()).limit(limit)).mappings().all()
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


def utf8(text: str) -> str:
    """`text` with what UTF-8 cannot encode (lone surrogates) replaced."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


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
        return "; ".join(f"{e['field']}: {e['message']}" for e in row["errors"])
    return row["last_error"] or row["note"] or ""


def utc_text(ts: float | None) -> str:
    """UNIX seconds as `2026-11-25 13:50:22` (UTC), as the CLI and the console show times."""
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def event_state(row: dict[str, Any]) -> str:
    """An event row's state as people read it: skipped, failed, pending, delivered or dead."""
    if row["status"] != "accepted":
        return row["status"]
    if row["dead"]:
        return "dead"
    return "pending" if row["pending"] else "delivered"


def shown_state(event: dict[str, Any]) -> str:
    """`event_state` of an event as `event()` returns it (deliveries listed, not counted)."""
    statuses = [d["status"] for d in event["deliveries"]]
    return event_state({"status": event["status"], "dead": "dead" in statuses,
                        "pending": "pending" in statuses})


def _narrow(query: sa.Select, mapping: str | None, since: float | None) -> sa.Select:
    if mapping:
        query = query.where(events.c.mapping == mapping)
    if since is not None:
        query = query.where(events.c.received_at >= since)
    return query


def event_status(result: Result) -> str:
    return {"planned": "accepted"}.get(result.status, result.status)


def event_key(result: Result) -> str | None:
    """The key a failed or skipped event is stored once under (accepted ones are
    deduplicated by their deliveries' keys)."""
    return storable(result.key) if not result.deliveries and result.key else None


def event_row(mapping: str, raw: bytes, headers: dict[str, Any], query: dict[str, Any],
              result: Result, now: float) -> dict[str, Any]:
    """An events row for a webhook as the store writes it."""
    return {"mapping": mapping, "received_at": now, "status": event_status(result),
            "body": raw, "headers": storable(headers), "query": storable(query),
            "errors": errors_json(result.errors), "note": result.skipped,
            "dedup_key": event_key(result)}


def errors_json(errors: tuple[FieldError, ...]) -> list[dict[str, str]] | None:
    return storable([e.to_dict() for e in errors]) or None


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
