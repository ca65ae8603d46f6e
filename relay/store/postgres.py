"""The PostgreSQL backend: `SqlStore`, but for its hot paths (webhooks accepted, deliveries
claimed, outcomes recorded), which go through psycopg itself, as sqlite.py's go through
sqlite3.

They run on one psycopg connection of this store's own per process, in pipeline mode: the
statements of a transaction travel together and the server's answers come back together, so
that a transaction costs the round trips its statements depend on (a claim: one; an accept or
a record: two or three) instead of one a statement, with BEGIN, COMMIT and the pool's
pre-ping on top. SQLAlchemy's execution layer also cost more CPU than the statements did.
Everything else (reads, replays, lookups, pacing, purges) is sql.py's. tests/unit/store/
test_contract.py holds every backend to one contract.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg

from relay.errors import StoreUnavailable
from relay.model import Attempt, Claimed, DeliveryStatus, EventStatus, Outcome, Receipt, Received
from relay.store import refusals
from relay.store.base import keeps
from relay.store.cancels import cancelled_by, note
from relay.store.rows import delivery_row, errors_json, event_key, lookup_row, storable
from relay.store.sql import SqlStore

INSERT_EVENT = (
    "INSERT INTO events (mapping, received_at, status, body, headers, query, errors, note, "
    "dedup_key) VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb, %s, %s)")
# A failed or skipped event whose key was stored before conflicts and is not inserted.
INSERT_KEYED = INSERT_EVENT + " ON CONFLICT DO NOTHING"
INSERT_DELIVERY = (
    "INSERT INTO deliveries (event_id, mapping, item, dedup_key, flow_key, channel, phone, "
    "attributes, status, attempts, next_at, created_at, updated_at, rule, schedule, "
    "cancel_key, last_error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, 0, %s, %s, "
    "%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING event_id")
INSERT_LOOKUP = (
    "INSERT INTO lookups (event_id, mapping, item, dedup_key, url, status, attempts, next_at, "
    "created_at, updated_at, tries) VALUES (%s, %s, %s, %s, %s, 'pending', 0, %s, %s, %s, "
    "'[]') ON CONFLICT DO NOTHING RETURNING event_id")
FIRST_EVENT = "SELECT event_id FROM deliveries WHERE mapping = %s AND dedup_key = %s"
FIRST_LOOKUP = "SELECT event_id FROM lookups WHERE mapping = %s AND dedup_key = %s"
FIRST_KEYED = "SELECT id FROM events WHERE mapping = %s AND status = %s AND dedup_key = %s"
# The refusal counts' upsert (refusals.py), its :name parameters in psycopg's spelling.
UPSERT = re.sub(r":(\w+)", r"%(\1)s", refusals.UPSERT)
# Workers skip each other's rows rather than queue for them; 'pending' written out so that
# the planner sees the partial index on pending deliveries applies.
CLAIM = (
    "UPDATE deliveries SET lease_until = %s, leased_by = %s WHERE id IN ("
    " SELECT id FROM deliveries WHERE status = 'pending' AND next_at <= %s"
    " AND (lease_until IS NULL OR lease_until <= %s) ORDER BY next_at LIMIT %s"
    " FOR UPDATE SKIP LOCKED) "
    "RETURNING id, event_id, mapping, flow_key, channel, phone, attributes, attempts, "
    "created_at, lease_until")
LEASES = "SELECT id, status, leased_by FROM deliveries WHERE id = ANY(%s) FOR UPDATE"
INSERT_ATTEMPT = (
    "INSERT INTO attempts (delivery_id, started_at, duration_ms, http_status, engati_code, "
    "outcome, error, failure, worker) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)")
SET_OUTCOME = (
    "UPDATE deliveries SET status = %s, attempts = attempts + 1, next_at = %s, "
    "lease_until = NULL, leased_by = NULL, updated_at = %s, last_error = %s, failure = %s "
    "WHERE id = %s")
# Cancellations (cancels.py says what they mean).
KEPT_CANCEL = "SELECT event_id FROM cancels WHERE mapping = %s AND key = %s AND expires_at > %s"
KEEP_CANCEL = (
    "INSERT INTO cancels (mapping, key, event_id, created_at, expires_at) "
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (mapping, key) DO UPDATE SET "
    "event_id = excluded.event_id, created_at = excluded.created_at, "
    "expires_at = excluded.expires_at")
CANCEL_PENDING = (
    "UPDATE deliveries SET status = 'cancelled', updated_at = %s, last_error = %s "
    "WHERE mapping = ANY(%s) AND cancel_key = %s AND status = 'pending' "
    "AND (lease_until IS NULL OR lease_until <= %s) RETURNING id")
SET_NOTE = "UPDATE events SET note = %s WHERE id = %s"


class PostgresStore(SqlStore):
    """The contract on PostgreSQL (see base.py and sql.py)."""

    # And the driver's own, where we talk to the driver directly.
    unavailable = (*SqlStore.unavailable, psycopg.OperationalError, psycopg.InterfaceError)

    def __init__(self, url: str, *, timeout: float = 5.0, worker: bool = False):
        super().__init__(url, timeout=timeout, worker=worker)
        # The arguments SQLAlchemy's pool connects with: the same server, user and options.
        args, options = self.engine.dialect.create_connect_args(self.engine.url)
        self._connect = functools.partial(psycopg.connect, *args, **options, autocommit=True)
        # Web requests arrive on threads: one transaction at a time on the connection.
        self._lock = threading.Lock()
        self._connection: psycopg.Connection[Any] | None = None
        self._pid = 0

    @contextlib.contextmanager
    def _direct(self) -> Iterator[psycopg.Cursor[Any]]:
        """A write transaction on this store's own connection, in pipeline mode: committed
        when the block ends, rolled back if it raises. Reading a result waits for the
        server's answers to what was sent so far."""
        with self._lock:
            try:
                db = self._own_connection()
                with db.pipeline(), db.transaction():
                    yield db.cursor()
            except self.unavailable as exc:
                raise StoreUnavailable.from_driver(exc) from exc
            finally:
                if self._connection is not None and self._connection.broken:
                    self._connection = None  # the next transaction connects again

    def _own_connection(self) -> psycopg.Connection[Any]:
        """This process's connection, never one of the pool's; a forked process opens its
        own (psycopg leaves the parent's alone when the child lets go of it)."""
        if self._connection is None or self._pid != os.getpid():
            self._connection = self._connect()
            self._pid = os.getpid()
        return self._connection

    def dispose(self) -> None:
        if self._connection is not None and self._pid == os.getpid():
            self._connection.close()
        self._connection = None
        super().dispose()

    # --- the hot paths ---------------------------------------------------------------------

    def write_batch(self, batch: list[Received], refused: list[dict[str, Any]]) -> list[Receipt]:
        """As SqlStore's: the events, then their deliveries and lookups, each a statement per
        row sent together; duplicates are answered and taken out as there."""
        with self._direct() as db:
            if refused:
                db.executemany(UPSERT, refused)
            # Keyed events in key order: two transactions never wait for each other's keys.
            keyed = sorted((i for i, item in enumerate(batch) if event_key(item.result)),
                           key=lambda i: event_key(batch[i].result) or "")
            plain = sorted(set(range(len(batch))) - set(keyed))
            ids: dict[int, int | None] = {}
            if plain:
                db.executemany(INSERT_EVENT + " RETURNING id",
                               [event_values(batch[i]) for i in plain], returning=True)
                for i in plain:
                    ids[i] = db.fetchone()[0]  # type: ignore[index]
                    db.nextset()
            for i in keyed:  # failed or skipped, with a key: rare, one at a time
                row = db.execute(INSERT_KEYED + " RETURNING id", event_values(batch[i]))
                found = row.fetchone()
                ids[i] = found[0] if found else None
            inserted, looked = self._plan(db, batch, ids)
            receipts, repeated = [], []
            for i, item in enumerate(batch):
                event_id, result = ids[i], item.result
                if event_id is None:
                    first = db.execute(FIRST_KEYED, (item.mapping, EventStatus.of(result.status),
                                                     event_key(result))).fetchone()
                    receipts.append(Receipt(EventStatus.DUPLICATE, first[0]))  # type: ignore[index]
                elif ((result.deliveries or result.lookups)
                      and not inserted[event_id] and not looked[event_id]):
                    repeated.append(event_id)
                    first_of, planned = ((FIRST_EVENT, result.deliveries[0]) if result.deliveries
                                         else (FIRST_LOOKUP, result.lookups[0]))
                    first = db.execute(first_of, (item.mapping,
                                                  storable(planned.dedup_key))).fetchone()
                    receipts.append(Receipt(EventStatus.DUPLICATE, first[0]))  # type: ignore[index]
                elif result.cancels:
                    receipts.append(Receipt(EventStatus.of(result.status), event_id,
                                            inserted[event_id], looked[event_id],
                                            cancel(db, event_id, item)))
                else:
                    receipts.append(Receipt(EventStatus.of(result.status), event_id,
                                            inserted[event_id], looked[event_id]))
            if repeated:
                db.execute("DELETE FROM events WHERE id = ANY(%s)", (repeated,))
        return receipts

    @staticmethod
    def _plan(db: psycopg.Cursor[Any], batch: list[Received],
              ids: dict[int, int | None]) -> tuple[Counter[int], Counter[int]]:
        """Insert the stored events' deliveries and lookups; how many of each every event
        got (none: their dedup keys were taken)."""
        rows = [delivery_row(event_id, item.mapping, d, item.received_at)
                for item, event_id in ((item, ids[i]) for i, item in enumerate(batch))
                if event_id is not None for d in item.result.deliveries]
        for row in rows:  # a delivery arriving after the cancellation that names it: rare
            if row["cancel_key"] is not None:
                found = db.execute(KEPT_CANCEL, (row["mapping"], row["cancel_key"],
                                                 row["updated_at"])).fetchone()
                if found is not None:
                    row.update(status=DeliveryStatus.CANCELLED, last_error=cancelled_by(found[0]))
        fetches = [lookup_row(event_id, item.mapping, f, item.received_at)
                   for item, event_id in ((item, ids[i]) for i, item in enumerate(batch))
                   if event_id is not None for f in item.result.lookups]
        inserted: Counter[int] = Counter()
        looked: Counter[int] = Counter()
        for statement, values, counts in (
                (INSERT_DELIVERY, [delivery_values(row) for row in rows], inserted),
                (INSERT_LOOKUP, [(f["event_id"], f["mapping"], f["item"], f["dedup_key"],
                                  f["url"], f["next_at"], f["created_at"], f["updated_at"])
                                 for f in fetches], looked)):
            if not values:
                continue
            db.executemany(statement, values, returning=True)
            while True:
                counts.update(row[0] for row in db.fetchall())
                if not db.nextset():
                    break
        # (issue 17: workers' NOTIFY, once a delivery due now is inserted, goes here.)
        return inserted, looked

    def claim(self, worker: str, limit: int, now: float, lease: float) -> list[Claimed]:
        with self._direct() as db:
            db.execute(CLAIM, (now + lease, worker, now, now, limit))
            rows = db.fetchall()
        return sorted((Claimed(*row) for row in rows), key=lambda c: c.id)

    def record_many(self, outcomes: list[Attempt], worker: str, now: float) -> list[bool]:
        """As SqlStore's: the leases read (and locked), then every attempt and outcome sent
        together with the commit."""
        ids = [attempt.delivery_id for attempt in outcomes]
        with self._direct() as db:
            current = {row[0]: (row[1], row[2])
                       for row in db.execute(LEASES, (ids,)).fetchall()}
            kept = [keeps(current.get(attempt.delivery_id), attempt, worker)
                    for attempt in outcomes]
            db.executemany(INSERT_ATTEMPT, [
                (attempt.delivery_id, attempt.started_at, attempt.duration_ms,
                 attempt.http_status, attempt.engati_code, attempt.outcome, attempt.error,
                 attempt.failure, worker)
                for attempt in outcomes])
            changes = [
                (Outcome(attempt.outcome).status,
                 attempt.next_at if attempt.next_at is not None else now, now, attempt.error,
                 attempt.failure, attempt.delivery_id)
                for attempt, keep in zip(outcomes, kept, strict=True) if keep]
            if changes:
                db.executemany(SET_OUTCOME, changes)
        return kept


def event_values(item: Received) -> tuple[Any, ...]:
    """INSERT_EVENT's values for a webhook (rows.event_row's, JSON as text)."""
    result = item.result
    return (item.mapping, item.received_at, EventStatus.of(result.status), item.body,
            json.dumps(storable(item.headers)), json.dumps(storable(item.query)),
            json.dumps(errors_json(result.errors)), result.skipped, event_key(result))


def delivery_values(row: dict[str, Any]) -> tuple[Any, ...]:
    """INSERT_DELIVERY's values for a rows.delivery_row."""
    return (row["event_id"], row["mapping"], row["item"], row["dedup_key"], row["flow_key"],
            row["channel"], row["phone"], json.dumps(row["attributes"]), row["status"],
            row["next_at"], row["created_at"], row["updated_at"], row["rule"], row["schedule"],
            row["cancel_key"], row["last_error"])


def cancel(db: psycopg.Cursor[Any], event_id: int, item: Received) -> int:
    """cancels.apply and the event's note, through the driver; how many it cancelled."""
    now, count = item.received_at, 0
    for cancellation in item.result.cancels:
        targets = list(cancellation.mappings or (item.mapping,))
        db.executemany(KEEP_CANCEL, [(target, cancellation.key, event_id, now,
                                      now + cancellation.keep) for target in targets])
        count += len(db.execute(CANCEL_PENDING, (now, cancelled_by(event_id), targets,
                                                 cancellation.key, now)).fetchall())
    said = note(item.result.cancels, item.mapping, count)
    db.execute(SET_NOTE, (f"{item.result.skipped}; {said}" if item.result.skipped else said,
                          event_id))
    return count
