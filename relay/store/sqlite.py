"""The SQLite backend: `SqlStore`, but for its hot paths (webhooks accepted, deliveries
claimed, outcomes recorded), which go through the driver itself.

They run on one sqlite3 connection of this store's own, with plain statements. SQLAlchemy's
execution layer (a pooled connection per transaction, an execution context per statement,
result objects) cost more CPU than the rest of the work: about 0.17 ms of the ~0.9 ms a web
process spent per webhook under load, and a third of the worker's CPU per delivery.
Everything else (reads, replays, pacing, purges) is sql.py's. tests/unit/store/
test_contract.py holds both to one contract.

Writers take the write lock up front (`BEGIN IMMEDIATE`), after queueing for it among our own
processes (WriterQueue): two writers never deadlock, they queue. Readers begin deferred and,
in WAL mode, wait for no writer.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import sqlite

from relay.errors import RelayError, StoreUnavailable
from relay.mapping import Delivery
from relay.model import Attempt, Claimed, DeliveryStatus, EventStatus, Outcome, Receipt, Received
from relay.store.base import keeps_each
from relay.store.cancels import cancelled_by, note
from relay.store.group_commit import WriterQueue
from relay.store.refusals import UPSERT
from relay.store.rows import attempt_row, delivery_row, errors_json, event_key, rule_text, storable
from relay.store.sql import READ, SqlStore

# A failed or skipped event whose key was stored before conflicts and is not inserted.
INSERT_EVENT = (
    "INSERT INTO events (mapping, received_at, status, body, headers, query, errors, note, "
    "dedup_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id")
INSERT_DELIVERY = (
    "INSERT INTO deliveries (event_id, mapping, item, dedup_key, flow_key, channel, phone, "
    "attributes, status, attempts, next_at, created_at, updated_at, rule) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
# A scheduled delivery (schedule:, quiet_hours:): the plain one's columns, and its own.
INSERT_SCHEDULED = (
    "INSERT INTO deliveries (event_id, mapping, item, dedup_key, flow_key, channel, phone, "
    "attributes, status, attempts, next_at, created_at, updated_at, rule, schedule, "
    "cancel_key, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING")
FIRST_EVENT = "SELECT event_id FROM deliveries WHERE mapping = ? AND dedup_key = ?"
INSERT_LOOKUP = (
    "INSERT INTO lookups (event_id, mapping, item, dedup_key, url, status, attempts, next_at, "
    "created_at, updated_at, tries) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, '[]') "
    "ON CONFLICT DO NOTHING")
FIRST_LOOKUP = "SELECT event_id FROM lookups WHERE mapping = ? AND dedup_key = ?"
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
    "outcome, error, failure, worker) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
SET_OUTCOME = (
    "UPDATE deliveries SET status = ?, attempts = attempts + 1, next_at = ?, "
    "lease_until = NULL, leased_by = NULL, updated_at = ?, last_error = ?, failure = ? "
    "WHERE id = ?")


class SqliteStore(SqlStore):
    """`worker`: the store of a delivery worker, whose commits do not wait for the disk.
    What it writes (leases, attempts, outcomes) could be lost to a power cut and only repeat
    a call, which a crash can do anyway; the webhooks answered 2xx are written by the web
    processes, whose every commit is synced. The next synced commit or checkpoint makes the
    worker's writes durable too, and the worker checkpoints (see `checkpoint`) so that no
    webhook waits for one."""

    # And the driver's own, where we talk to the driver directly (BEGIN, checkpoints).
    unavailable = (*SqlStore.unavailable, sqlite3.OperationalError)

    def __init__(self, url: str, *, timeout: float = 5.0, worker: bool = False):
        super().__init__(url, timeout=timeout, worker=worker)
        self.path = self.engine.url.database or ""
        if self.path in ("", ":memory:"):
            raise RelayError("DATABASE_URL names no SQLite file (sqlite:///relay.db): every "
                             "process of the relay must see the same database")
        self._timeout, self._worker = timeout, worker
        self._writers = WriterQueue(f"{self.path}.lock", timeout)
        self._connection: sqlite3.Connection | None = None
        self._syncs_log = False  # set with the connection (configure)
        self._pid = 0

    def insert(self, table: sa.Table) -> Any:
        return sqlite.insert(table)

    def _wake(self, conn: sa.Connection) -> None:
        """Nothing to send: SQLite has no notifications, its workers poll."""

    def waiter(self) -> None:
        return None

    @staticmethod
    def open_engine(url: str, timeout: float, worker: bool) -> sa.Engine:
        # Every transaction ends in a commit or a rollback: nothing to reset when a
        # connection goes back to the pool.
        engine = sa.create_engine(url, connect_args={"timeout": timeout},
                                  pool_reset_on_return=None)

        @sa_event.listens_for(engine, "connect")
        def _connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
            configure(dbapi_connection, timeout, worker)

        @sa_event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            # Through the driver's connection: SQLAlchemy's statement machinery cost more
            # than the BEGIN.
            read = conn.get_execution_options().get(READ)
            conn.connection.driver_connection.execute(  # type: ignore[union-attr]
                "BEGIN" if read else "BEGIN IMMEDIATE")

        return engine

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file, without waiting for anyone."""
        try:
            connection = self.engine.raw_connection()
            try:
                connection.driver_connection.execute(  # type: ignore[union-attr]
                    "PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                connection.close()
        except (sa.exc.DBAPIError, sqlite3.Error) as exc:
            raise StoreUnavailable.from_driver(exc) from exc

    @contextlib.contextmanager
    def _direct(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on this store's own connection, committed when the block
        ends, rolled back if it raises. The writer queue also lets one thread of the
        process in at a time, so the connection is only ever one writer's.

        A web process's commit is durable when this returns, but its sync to disk is made
        once the write lock is let go (`_sync_log`): with SQLite's own sync (synchronous=
        FULL) every writer of every process waited for the sync of the commit before it;
        under e2e's load the worker's claims fell behind the webhooks by 0.5-0.6 s at the
        end of a run, 0.1-0.2 s since (benchmarks/README.md)."""
        try:
            with self._writers:
                db = self._own_connection()
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
        if self._syncs_log:
            self._sync_log()

    def _sync_log(self) -> None:
        """Sync the write-ahead log, which holds the commit just made: what SQLite's
        synchronous=FULL does at each commit, here outside the write lock, so that writers
        go on meanwhile and syncs of several commits overlap. Until it returns, another
        process may read the commit (a worker may even call Engati for it) though a power cut
        could still undo it; the sender has not been answered yet, so its retry brings the
        webhook again: at least once, as always. The log is the same file for as long as
        this process's connection is open (SQLite deletes it only with the last one), and
        a checkpoint syncs it before copying it into the database, so a commit is on disk in
        the one or the other."""
        try:
            log_file = os.open(f"{self.path}-wal", os.O_RDONLY)
            try:
                os.fdatasync(log_file)
            finally:
                os.close(log_file)
        except OSError as exc:
            raise StoreUnavailable(f"the database's log could not be synced to disk: "
                                   f"{exc.strerror}") from exc

    def _own_connection(self) -> sqlite3.Connection:
        """This process's connection, never one of the pool's; a forked process opens its
        own."""
        if self._connection is None or self._pid != os.getpid():
            self._connection = sqlite3.connect(self.path, timeout=self._timeout,
                                               isolation_level=None, check_same_thread=False)
            self._syncs_log = configure(self._connection, self._timeout, self._worker,
                                        own=True)
            self._pid = os.getpid()
        return self._connection

    def dispose(self) -> None:
        if self._connection is not None and self._pid == os.getpid():
            self._connection.close()
        self._connection = None
        super().dispose()

    def index_search(self, limit: int) -> int:
        with self._direct() as db:
            indexed = db.execute(INDEXED).fetchone()[0]
            ids = [row[0] for row in db.execute(
                "SELECT id FROM events WHERE id > ? ORDER BY id LIMIT ?", (indexed, limit))]
            if ids:
                db.execute(INDEX_EVENTS, (indexed, ids[-1]))
                db.execute(MARK_INDEXED, (ids[-1],))
        return len(ids)

    def merge_search(self, pages: int) -> bool:
        with self._direct() as db:
            before = db.total_changes
            db.execute(MERGE_SEARCH, (pages,))
            # FTS5's own sign: a merge that wrote anything changed at least two rows.
            return db.total_changes - before >= 2

    # --- the hot paths ---------------------------------------------------------------------

    def write_batch(self, batch: list[Received], refused: list[dict[str, Any]]) -> list[Receipt]:
        with self._direct() as db:
            if refused:
                db.executemany(UPSERT, refused)
            return [self._accept(db, item) for item in batch]

    @staticmethod
    def _accept(db: sqlite3.Connection, item: Received) -> Receipt:
        result, mapping, now = item.result, item.mapping, item.received_at
        status = EventStatus.of(result.status)
        key = event_key(result)
        row = db.execute(INSERT_EVENT, (
            mapping, now, status, item.body, json.dumps(storable(item.headers)),
            json.dumps(storable(item.query)), json.dumps(errors_json(result.errors)),
            result.skipped, key)).fetchone()
        if row is None:
            first = db.execute(FIRST_KEYED, (mapping, status, key)).fetchone()[0]
            return Receipt(EventStatus.DUPLICATE, first)
        event_id = row[0]
        inserted = sum(
            db.execute(INSERT_DELIVERY, (
                event_id, mapping, d.item, storable(d.dedup_key), d.flow_key, d.channel,
                d.phone, json.dumps(storable(d.attributes)), now, now, now, rule_text(d)))
            .rowcount if d.send_at is None and d.cancel_key is None else
            SqliteStore._scheduled(db, event_id, mapping, d, now)
            for d in result.deliveries)
        looked = sum(db.execute(INSERT_LOOKUP, (
            event_id, mapping, f.item, storable(f.dedup_key), storable(f.url), now, now,
            now)).rowcount for f in result.lookups)
        if (result.deliveries or result.lookups) and not inserted and not looked:
            first_of, planned = ((FIRST_EVENT, result.deliveries[0]) if result.deliveries
                                 else (FIRST_LOOKUP, result.lookups[0]))
            first = db.execute(first_of, (mapping, storable(planned.dedup_key))).fetchone()[0]
            db.execute("DELETE FROM events WHERE id = ?", (event_id,))
            return Receipt(EventStatus.DUPLICATE, first)
        cancelled = SqliteStore._cancel_direct(db, event_id, item) if result.cancels else None
        return Receipt(status, event_id, inserted, looked, cancelled)

    @staticmethod
    def _scheduled(db: sqlite3.Connection, event_id: int, mapping: str, d: Delivery,
                   now: float) -> int:
        """Insert a delivery with a schedule or a cancel key (cancelled at once when a kept
        cancellation names its key); how many rows (0: its dedup key was taken)."""
        row = delivery_row(event_id, mapping, d, now)
        if row["cancel_key"] is not None:
            found = db.execute(KEPT_CANCEL, (mapping, row["cancel_key"], now)).fetchone()
            if found is not None:
                row.update(status=DeliveryStatus.CANCELLED, last_error=cancelled_by(found[0]))
        return db.execute(INSERT_SCHEDULED, (
            event_id, mapping, d.item, row["dedup_key"], d.flow_key, d.channel, d.phone,
            json.dumps(row["attributes"]), row["status"], row["next_at"], row["created_at"],
            now, row["rule"], row["schedule"], row["cancel_key"], row["last_error"])).rowcount

    @staticmethod
    def _cancel_direct(db: sqlite3.Connection, event_id: int, item: Received) -> int:
        """cancels.apply and the event's note, through the driver; how many it cancelled."""
        now, count = item.received_at, 0
        for cancellation in item.result.cancels:
            targets = cancellation.mappings or (item.mapping,)
            db.executemany(KEEP_CANCEL, [(target, cancellation.key, event_id, now,
                                          now + cancellation.keep) for target in targets])
            count += db.execute(
                CANCEL_PENDING.format(", ".join("?" * len(targets))),  # placeholders only
                (now, cancelled_by(event_id), *targets, cancellation.key, now)).rowcount
        db.execute("UPDATE events SET note = ? WHERE id = ?", (note(item, count), event_id))
        return count

    def claim(self, worker: str, limit: int, now: float, lease: float) -> list[Claimed]:
        with self._direct() as db:
            rows = db.execute(CLAIM, (now + lease, worker, now, now, limit)).fetchall()
        return sorted(map(_claimed, rows), key=lambda c: c.id)

    def record_many(self, outcomes: list[Attempt], worker: str, now: float) -> list[bool]:
        outcomes = [attempt_row(attempt) for attempt in outcomes]
        ids = [attempt.delivery_id for attempt in outcomes]
        with self._direct() as db:
            current = {row[0]: (row[1], row[2]) for row in db.execute(
                # placeholders only: the ids travel as parameters
                f"SELECT id, status, leased_by FROM deliveries WHERE id IN "
                f"({', '.join('?' * len(ids))})", ids)}
            kept = keeps_each(current, outcomes, worker)
            db.executemany(INSERT_ATTEMPT, [
                (attempt.delivery_id, attempt.started_at, attempt.duration_ms,
                 attempt.http_status, attempt.engati_code, attempt.outcome, attempt.error,
                 attempt.failure, worker)
                for attempt in outcomes])
            db.executemany(SET_OUTCOME, [
                (Outcome(attempt.outcome).status,
                 attempt.next_at if attempt.next_at is not None else now, now, attempt.error,
                 attempt.failure, attempt.delivery_id)
                for attempt, keep in zip(outcomes, kept, strict=True) if keep])
        return kept


def _claimed(row: tuple[Any, ...]) -> Claimed:
    """A row of CLAIM's RETURNING, whose columns are Claimed's fields in order: read by
    position, not through a dict per row (which cost more than the rest of building it)."""
    values = list(row)
    values[6] = json.loads(values[6])  # the attributes, stored as JSON text
    return Claimed(*values)


# Cancellations (cancels.py says what they mean).
KEPT_CANCEL = "SELECT event_id FROM cancels WHERE mapping = ? AND key = ? AND expires_at > ?"
KEEP_CANCEL = (
    "INSERT INTO cancels (mapping, key, event_id, created_at, expires_at) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (mapping, key) DO UPDATE SET "
    "event_id = excluded.event_id, created_at = excluded.created_at, "
    "expires_at = excluded.expires_at")
CANCEL_PENDING = (
    "UPDATE deliveries SET status = 'cancelled', updated_at = ?, last_error = ? "
    "WHERE mapping IN ({}) AND cancel_key = ? AND status = 'pending' "
    "AND (lease_until IS NULL OR lease_until <= ?)")

# Search's index (migration 0009): the events after the mark, up to `limit` of them, then the
# mark moved past them, in one transaction. The write lock is held meanwhile: the worker
# sizes `limit` to a few milliseconds of it (delivery/upkeep.py).
INDEXED = "SELECT CAST(value AS INTEGER) FROM instance WHERE key = 'search_indexed'"
INDEX_EVENTS = (
    "INSERT INTO events_search (rowid, body) "
    "SELECT id, body FROM events WHERE id > ? AND id <= ?")
# Merging only where a level holds `usermerge` (16) segments, or a merge is under way.
MERGE_SEARCH = "INSERT INTO events_search (events_search, rank) VALUES ('merge', ?)"
MARK_INDEXED = "UPDATE instance SET value = ? WHERE key = 'search_indexed'"


def configure(connection: sqlite3.Connection, timeout: float, worker: bool, *,
              own: bool = False) -> bool:
    """The settings of every connection to the file, the pool's and the hot paths' alike.
    True when the caller is to sync the log after each commit (SqliteStore._sync_log): a web
    process's own connection (`own`), the database in WAL mode."""
    # We issue BEGIN ourselves: the driver's own transaction handling would start
    # transactions as readers and fail to upgrade them under contention.
    connection.isolation_level = None
    wal = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    syncs_itself = own and wal and not worker
    # Web processes leave checkpoints to the worker (up to 64 MB of log, as a safety net
    # should no worker run): a checkpoint in a request made that webhook wait 20-50 ms.
    for pragma in ("foreign_keys=ON",
                   "synchronous=NORMAL" if worker or syncs_itself else "synchronous=FULL",
                   "wal_autocheckpoint=1000" if worker else "wal_autocheckpoint=16000",
                   f"busy_timeout={int(timeout * 1000)}"):
        connection.execute(f"PRAGMA {pragma}")
    return syncs_itself
