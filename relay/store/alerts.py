"""The alerts' rows in SQL (relay/alerts/ decides what they mean): the facts the rules read,
the state of each condition, and the outbox of messages. Functions over a transaction of
`SqlStore` (sql.py), SQLite and PostgreSQL alike.

Sent once across every worker: a condition changes state only by a conditional update of its
row (`version` compared and bumped) in the transaction that queues its messages, and a
message is sent by the one worker whose conditional update leased it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from relay.model import FailureKind, Outcome
from relay.store.history import waited
from relay.store.tables import alert_outbox, alert_state, attempts, deliveries

KEPT = 7 * 86400.0  # seconds a sent or given-up message is kept (for the record)
_D = deliveries.c
_O = alert_outbox.c
_S = alert_state.c


def facts(conn: sa.Connection, now: float, window: float, dead_since: float) -> dict[str, Any]:
    """What the rules judge (see Store.alert_facts)."""
    # The statuses written out, not bound: SQLite uses a partial index (deliveries_dead,
    # deliveries_due) only for a WHERE clause that visibly implies the index's.
    dead_where = (sa.text("deliveries.status = 'dead'"), _D.updated_at > dead_since)
    dead = []
    for mapping, failure, count, last_at in conn.execute(
            sa.select(_D.mapping, _D.failure, sa.func.count(), sa.func.max(_D.updated_at))
            .where(*dead_where).group_by(_D.mapping, _D.failure)):
        last_error = conn.execute(
            sa.select(_D.last_error).where(*dead_where, _D.mapping == mapping,
                                           _D.failure.is_(None) if failure is None
                                           else _D.failure == failure)
            .order_by(_D.updated_at.desc()).limit(1)).scalar()
        dead.append({"mapping": mapping, "failure": failure, "count": count,
                     "last_at": last_at, "last_error": last_error})
    a = attempts.c
    failed = sa.case((a.outcome != Outcome.DELIVERED, 1), else_=0)
    auth = sa.case((a.failure == FailureKind.AUTH, 1), else_=0)
    recent = [{"mapping": m, "total": int(t), "failed": int(f or 0), "auth": int(u or 0)}
              for m, t, f, u in conn.execute(
                  sa.select(_D.mapping, sa.func.count(), sa.func.sum(failed), sa.func.sum(auth))
                  .select_from(attempts.join(deliveries, _D.id == a.delivery_id))
                  .where(a.started_at > now - window).group_by(_D.mapping))]
    oldest = waited(conn, now)  # scheduled deliveries not yet due are not waiting
    return {"dead": sorted(dead, key=lambda d: (d["mapping"], d["failure"] or "")),
            "attempts": sorted(recent, key=lambda r: r["mapping"]),
            "oldest_pending": oldest}


def states(conn: sa.Connection) -> dict[str, dict[str, Any]]:
    return {row["key"]: dict(row) for row in conn.execute(sa.select(alert_state)).mappings()}


def transition(conn: sa.Connection, insert: Callable[[sa.Table], Any], key: str,
               version: int | None, state: dict[str, Any], messages: list[dict[str, Any]],
               now: float) -> bool:
    """Move a condition from `version` (None: no row yet) to `state`, queueing `messages`,
    unless another worker moved it first: then nothing changes and the answer is False."""
    values = {"status": state["status"], "since": state["since"], "sent_at": state["sent_at"],
              "last_at": state.get("last_at"), "updated_at": now}
    if version is None:
        # RETURNING says whether the row was inserted (a rowcount may not, on every driver).
        won = conn.execute(insert(alert_state).values(
            key=key, kind=state["kind"], version=1, **values)
            .on_conflict_do_nothing().returning(_S.key)).first() is not None
    else:
        won = conn.execute(alert_state.update().where(_S.key == key, _S.version == version)
                           .values(version=version + 1, **values)).rowcount == 1
    if won and messages:
        conn.execute(alert_outbox.insert(), [
            {"key": key, "channel": m["channel"], "message": m["message"], "status": "pending",
             "attempts": 0, "created_at": now, "next_at": now} for m in messages])
    return won


def claim(conn: sa.Connection, worker: str, now: float, lease: float,
          limit: int) -> list[dict[str, Any]]:
    """Lease due messages to `worker`; finished ones older than KEPT go on the way."""
    conn.execute(alert_outbox.delete().where(_O.status != "pending",
                                             _O.finished_at < now - KEPT))
    due = (sa.select(_O.id).where(_O.status == "pending", _O.next_at <= now,
                                  sa.or_(_O.lease_until.is_(None), _O.lease_until <= now))
           .order_by(_O.next_at, _O.id).limit(limit).with_for_update(skip_locked=True))
    ids = list(conn.execute(due).scalars())
    if not ids:
        return []
    rows = conn.execute(alert_outbox.update().where(
        _O.id.in_(ids), _O.status == "pending",
        sa.or_(_O.lease_until.is_(None), _O.lease_until <= now))
        .values(lease_until=now + lease, leased_by=worker)
        .returning(*alert_outbox.c)).mappings()
    return sorted((dict(row) for row in rows), key=lambda row: row["id"])


def finish(conn: sa.Connection, message_id: int, worker: str, now: float,
           error: str | None, next_at: float | None) -> bool:
    """Record a try of a message leased to `worker`: sent (no error), due again at
    `next_at`, or given up (an error and no next_at). False when the lease was lost."""
    if error is None:
        values: dict[str, Any] = {"status": "sent", "finished_at": now, "last_error": None}
    elif next_at is None:
        values = {"status": "failed", "finished_at": now, "last_error": error}
    else:
        values = {"next_at": next_at, "last_error": error}
    done: int = conn.execute(alert_outbox.update().where(
        _O.id == message_id, _O.status == "pending", _O.leased_by == worker)
        .values(attempts=_O.attempts + 1, lease_until=None, leased_by=None, **values)).rowcount
    return done == 1
