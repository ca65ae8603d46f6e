"""Accepting webhooks on SQLite through the driver itself: the web processes' hot path.

Store.accept writes each batch of webhooks (see GroupCommit) in one transaction. On
PostgreSQL that goes through SQLAlchemy; on SQLite it comes here, to one sqlite3 connection
kept for accepts, because SQLAlchemy's execution layer (a pooled connection per batch, an
execution context per statement, result objects) cost about 0.17 ms of CPU per webhook under
load, a fifth of what a web process spends on one. The statements are the same as the
SQLAlchemy path's; tests/test_store.py runs the one contract against both.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from typing import Any

import sqlalchemy as sa

from relay.history import errors_json, event_status, storable

INSERT_EVENT = (
    "INSERT INTO events (mapping, received_at, status, body, headers, query, errors, note) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
INSERT_DELIVERY = (
    "INSERT INTO deliveries (event_id, mapping, item, dedup_key, flow_key, channel, phone, "
    "attributes, status, attempts, next_at, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?) ON CONFLICT DO NOTHING")
FIRST_EVENT = "SELECT event_id FROM deliveries WHERE mapping = ? AND dedup_key = ?"


class SqliteAccepts:
    """Writes batches of accepts; one batch at a time (GroupCommit has one leader)."""

    def __init__(self, engine: sa.Engine, writers: contextlib.AbstractContextManager[Any]):
        self.engine = engine
        self.writers = writers
        self._lock = threading.Lock()  # the connection is one writer's at a time
        self._connection: Any = None
        self._pid = 0

    def write(self, batch: list[tuple]) -> list[tuple[str, int, int]]:
        """Each webhook's (status, event id, deliveries planned), as Store.accept's Receipt:
        its event, then its deliveries; an event whose every delivery was accepted before
        is taken out again and answered as a duplicate of the first."""
        with self._lock, self.writers:
            db = self._connect()
            db.execute("BEGIN IMMEDIATE")
            try:
                receipts = [self._insert(db, *item) for item in batch]
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):  # the error that got us here matters
                    db.execute("ROLLBACK")
                raise
        return receipts

    def _insert(self, db: Any, mapping: str, raw: bytes, headers: dict[str, str],
                query: dict[str, Any], result: Any, now: float) -> tuple[str, int, int]:
        status = event_status(result)
        event_id = db.execute(INSERT_EVENT, (
            mapping, now, status, raw, json.dumps(storable(headers)),
            json.dumps(storable(query)), json.dumps(errors_json(result.errors)),
            result.skipped)).lastrowid
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

    def _connect(self) -> Any:
        """This process's connection, with the engine's settings (WAL, synced commits, the
        busy timeout); a forked process opens its own."""
        if self._pid != os.getpid():
            self._connection = self.engine.raw_connection().driver_connection
            self._pid = os.getpid()
        return self._connection
