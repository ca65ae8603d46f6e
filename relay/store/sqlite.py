"""The hot writes on SQLite, through the driver itself: webhooks accepted, deliveries claimed,
outcomes recorded.

Store sends these through SQLAlchemy on PostgreSQL; on SQLite they come here, to one sqlite3
connection kept for them, with plain statements. SQLAlchemy's execution layer (a pooled
connection per transaction, an execution context per statement, result objects) cost more
CPU than the rest of the work: about 0.17 ms of the ~0.9 ms a web process spent per webhook
under load, and a third of the worker's CPU per delivery. The statements are the SQLAlchemy
path's; tests/test_store.py runs the one contract against both. Everything else (reads,
replays, pauses, purges) stays with SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from relay.errors import StoreUnavailable
from relay.model import Attempt, Claimed, Outcome
from relay.store.base import keeps
from relay.store.history import errors_json, event_key, event_status, storable
from relay.store.refusals import UPSERT

# A failed or skipped event whose key was stored before conflicts and is not inserted.
INSERT_EVENT = (
    "INSERT INTO events (mapping, received_at, status, body, headers, query, errors, note, "
    "dedup_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id")
INSERT_DELIVERY = (
    "INSERT INTO deliveries (event_id, mapping, item, dedup_key, flow_key, channel, phone, "
    "attributes, status, attempts, next_at, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?) ON CONFLICT DO NOTHING")
FIRST_EVENT = "SELECT event_id FROM deliveries WHERE mapping = ? AND dedup_key = ?"
FIRST_KEYED = "SELECT id FROM events WHERE mapping = ? AND status = ? AND dedup_key = ?"
# 'pending' written out, not bound: SQLite uses the partial index on pending deliveries only
# for a query whose WHERE clause visibly implies the index's.
CLAIM = (
    "UPDATE deliveries SET lease_until = ?, leased_by = ? WHERE id IN ("
    " SELECT id FROM deliveries WHERE status = 'pending' AND next_at <= ?"
    " AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_at LIMIT ?) "
    "RETURNING id, event_id, mapping, flow_key, channel, phone, attributes, attempts, "
    "created_at, lease_until")
INSERT_ATTEMPT = (
    "INSERT INTO attempts (delivery_id, started_at, duration_ms, http_status, engati_code, "
    "outcome, error, worker) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
SET_OUTCOME = (
    "UPDATE deliveries SET status = ?, attempts = attempts + 1, next_at = ?, "
    "lease_until = NULL, leased_by = NULL, updated_at = ?, last_error = ? WHERE id = ?")


class SqliteDirect:
    """One connection per process for the hot writes, one transaction at a time."""

    def __init__(self, engine: sa.Engine, writers: contextlib.AbstractContextManager[Any]):
        self.engine = engine
        # The queue for SQLite's write lock (store.WriterQueue). It also lets one thread of
        # the process in at a time, so the connection is only ever one writer's.
        self.writers = writers
        self._connection: sqlite3.Connection | None = None
        self._pid = 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, committed when the block ends, rolled back if it raises."""
        try:
            with self.writers:
                db = self._connect()
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):  # the first error is the one
                        db.execute("ROLLBACK")
                    raise
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable.from_driver(exc) from exc

    def _connect(self) -> sqlite3.Connection:
        """This process's connection, with the engine's settings (WAL, synced commits or not,
        the busy timeout); a forked process opens its own."""
        if self._pid != os.getpid():
            self._connection = self.engine.raw_connection().driver_connection
            self._pid = os.getpid()
        assert self._connection is not None
        return self._connection

    # --- web: Store.accept -------------------------------------------------------------------

    def accept(self, batch: list[tuple],
               refused: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
        """Each webhook's (status, event id, deliveries planned): its event, then its
        deliveries; an event whose every delivery was accepted before is taken out again and
        answered as a duplicate of the first, and so is a failed or skipped event whose key
        was stored before. The refusal counts go into the same transaction."""
        with self.transaction() as db:
            if refused:
                db.executemany(UPSERT, refused)
            return [self._accept(db, *item) for item in batch]

    @staticmethod
    def _accept(db: sqlite3.Connection, mapping: str, raw: bytes, headers: dict[str, str],
                query: dict[str, Any], result: Any, now: float) -> tuple[str, int, int]:
        status = event_status(result)
        key = event_key(result)
        row = db.execute(INSERT_EVENT, (
            mapping, now, status, raw, json.dumps(storable(headers)),
            json.dumps(storable(query)), json.dumps(errors_json(result.errors)),
            result.skipped, key)).fetchone()
        if row is None:
            return "duplicate", db.execute(FIRST_KEYED, (mapping, status, key)).fetchone()[0], 0
        event_id = row[0]
        inserted = sum(db.execute(INSERT_DELIVERY, (
            event_id, mapping, d.item, storable(d.dedup_key), d.flow_key, d.channel, d.phone,
            json.dumps(storable(d.attributes)), now, now, now)).rowcount
            for d in result.deliveries)
        if result.deliveries and not inserted:
            first = db.execute(FIRST_EVENT, (
                mapping, storable(result.deliveries[0].dedup_key))).fetchone()[0]
            db.execute("DELETE FROM events WHERE id = ?", (event_id,))
            return "duplicate", first, 0
        return status, event_id, inserted

    # --- worker: Store.claim and Store.record_many -------------------------------------------

    def claim(self, worker: str, limit: int, now: float, lease: float) -> list[Claimed]:
        with self.transaction() as db:
            rows = db.execute(CLAIM, (now + lease, worker, now, now, limit)).fetchall()
        return sorted((Claimed(*row[:6], json.loads(row[6]), *row[7:]) for row in rows),
                      key=lambda c: c.id)

    def record_many(self, outcomes: list[Attempt], worker: str, now: float) -> list[bool]:
        ids = [attempt.delivery_id for attempt in outcomes]
        with self.transaction() as db:
            current = {row[0]: (row[1], row[2]) for row in db.execute(
                # placeholders only: the ids travel as parameters
                f"SELECT id, status, leased_by FROM deliveries WHERE id IN "
                f"({', '.join('?' * len(ids))})", ids)}
            kept = [keeps(current.get(attempt.delivery_id), attempt, worker)
                    for attempt in outcomes]
            db.executemany(INSERT_ATTEMPT, [
                (attempt.delivery_id, attempt.started_at, attempt.duration_ms,
                 attempt.http_status, attempt.engati_code, attempt.outcome, attempt.error, worker)
                for attempt in outcomes])
            db.executemany(SET_OUTCOME, [
                (Outcome(attempt.outcome).status,
                 attempt.next_at if attempt.next_at is not None else now, now, attempt.error,
                 attempt.delivery_id)
                for attempt, keep in zip(outcomes, kept, strict=True) if keep])
        return kept
