"""The PostgreSQL backend: `SqlStore`, but for its hot paths (webhooks accepted, deliveries
claimed, outcomes recorded), which go through psycopg itself, as sqlite.py's go through
sqlite3.

They run on one psycopg connection of this store's own per process, in pipeline mode: the
statements of a transaction travel together and the server's answers come back together, so
that a transaction costs the round trips its statements depend on (an accept: two)
instead of one a statement, with BEGIN, COMMIT and the pool's pre-ping on top; a claim and a
record are one statement each, sent alone as transactions of their own (`_alone`: cheaper
still). SQLAlchemy's execution layer also cost more CPU than the statements did.
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
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import psycopg
from sqlalchemy import event as sa_event

from relay.errors import StoreUnavailable
from relay.model import Attempt, Claimed, DeliveryStatus, EventStatus, Outcome, Receipt, Received
from relay.store import refusals, wake
from relay.store.cancels import cancelled_by, note
from relay.store.rows import attempt_row, delivery_row, event_key, event_row, lookup_row, storable
from relay.store.sql import SqlStore, due_now

# Many rows to a statement, as one JSON array (the bodies, bytes, as an array beside it): one
# round trip and one plan however many webhooks share the batch, and one parameter to encode
# (array parameters cost psycopg more CPU per webhook than the statements did). Rows go in
# in `n`'s order and take their ids from the sequence in that order, so the ids RETURNING
# gives, sorted, are the rows' in order (what SQLAlchemy's "insertmanyvalues" relies on too).
EVENTS_FROM = (
    "INSERT INTO events (mapping, received_at, status, body, headers, query, errors, note, "
    "dedup_key) SELECT mapping, received_at, status, (%s::bytea[])[n], headers, query, "
    "errors, note, dedup_key FROM jsonb_to_recordset(%s::jsonb) AS t(n int, mapping text, "
    "received_at float8, status text, headers jsonb, query jsonb, errors jsonb, note text, "
    "dedup_key text)")
INSERT_EVENTS = f"{EVENTS_FROM} ORDER BY n RETURNING id"
# A failed or skipped event whose key was stored before conflicts and is not inserted.
INSERT_KEYED = f"{EVENTS_FROM} ON CONFLICT DO NOTHING RETURNING id"
# A deliveries and a lookups row but for its event_id (rows.delivery_row's, lookup_row's),
# as columns and as jsonb_to_recordset's column definitions.
DELIVERY = ("mapping, item, dedup_key, flow_key, channel, phone, attributes, status, "
            "attempts, next_at, created_at, updated_at, rule, schedule, cancel_key, last_error")
DELIVERY_TYPES = (
    "mapping text, item int, dedup_key text, flow_key text, channel text, phone text, "
    "attributes jsonb, status text, attempts int, next_at float8, created_at float8, "
    "updated_at float8, rule text, schedule text, cancel_key text, last_error text")
LOOKUP = "mapping, item, dedup_key, url, status, attempts, next_at, created_at, updated_at, tries"
LOOKUP_TYPES = (
    "mapping text, item int, dedup_key text, url text, status text, attempts int, "
    "next_at float8, created_at float8, updated_at float8, tries jsonb")
INSERT_DELIVERIES = (
    f"INSERT INTO deliveries (event_id, {DELIVERY}) SELECT event_id, {DELIVERY} "
    f"FROM jsonb_to_recordset(%s::jsonb) AS t(event_id bigint, {DELIVERY_TYPES}) "
    "ON CONFLICT DO NOTHING RETURNING event_id")
INSERT_LOOKUPS = (
    f"INSERT INTO lookups (event_id, {LOOKUP}) SELECT event_id, {LOOKUP} "
    f"FROM jsonb_to_recordset(%s::jsonb) AS t(event_id bigint, {LOOKUP_TYPES}) "
    "ON CONFLICT DO NOTHING RETURNING event_id")
# The usual batch (no event keys, cancellations or cancel keys) in one statement: the events
# as INSERT_EVENTS stores them, and their deliveries and lookups, whose rows name their event
# by its place in the batch (event_id: 1 for the first, as the events' `n`) and are stored
# with its id. (The CTEs see the same snapshot, not each other's rows, but the foreign keys
# are checked at the statement's end, when the events are there.) Deliveries and lookups go
# in in their rows' order, as the separate statements put them: of two sharing a dedup key,
# the first is kept. Its one row: the events' ids in order, and the event id of every
# delivery and lookup inserted (their keys not taken before).
ACCEPT = (
    f"WITH stored AS ({INSERT_EVENTS}), "
    "placed AS (SELECT array_agg(id ORDER BY id) AS ids FROM stored), "
    f"planned AS (INSERT INTO deliveries (event_id, {DELIVERY}) SELECT ids[event_id], "
    f"{DELIVERY} FROM placed, jsonb_to_recordset(%s::jsonb) AS t(event_id int, "
    f"{DELIVERY_TYPES}) ON CONFLICT DO NOTHING RETURNING event_id), "
    f"fetched AS (INSERT INTO lookups (event_id, {LOOKUP}) SELECT ids[event_id], {LOOKUP} "
    f"FROM placed, jsonb_to_recordset(%s::jsonb) AS t(event_id int, {LOOKUP_TYPES}) "
    "ON CONFLICT DO NOTHING RETURNING event_id) "
    "SELECT ids, ARRAY(SELECT event_id FROM planned), ARRAY(SELECT event_id FROM fetched) "
    "FROM placed")
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
# When the earliest pending delivery not in flight is due (history.next_due's question): an
# idle worker asks at every poll, as one statement.
NEXT_DUE = ("SELECT min(next_at) FROM deliveries WHERE status = 'pending' "
            "AND (lease_until IS NULL OR lease_until <= %s)")
# A batch of outcomes in one statement: every attempt stored, and the outcome set where the
# delivery is still pending and still leased to this worker unless the attempt succeeded (a
# success always counts): base.keeps, as SQL. The update locks each row it sets and, should
# another transaction have changed the row meanwhile, checks its conditions again on the
# row as committed. RETURNING names the deliveries whose outcome was kept. The ids again as
# an array, for the planner: it takes jsonb_to_recordset for 100 rows whatever it holds, and
# joined them to every pending delivery (a bitmap scan of deliveries_due, the whole backlog
# for each record) rather than look up each one by its key.
RECORD = (
    "WITH o AS (SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS t(n int, "
    "delivery_id bigint, started_at float8, duration_ms float8, http_status int, "
    "engati_code int, outcome text, error text, failure text, status text, next_at float8)), "
    "stored AS (INSERT INTO attempts (delivery_id, started_at, duration_ms, http_status, "
    "engati_code, outcome, error, failure, worker) SELECT delivery_id, started_at, "
    "duration_ms, http_status, engati_code, outcome, error, failure, %(worker)s FROM o "
    "ORDER BY n) "
    "UPDATE deliveries AS d SET status = o.status, attempts = d.attempts + 1, "
    "next_at = o.next_at, lease_until = NULL, leased_by = NULL, updated_at = %(now)s, "
    "last_error = o.error, failure = o.failure FROM o WHERE d.id = ANY(%(ids)s) "
    "AND d.id = o.delivery_id AND d.status = 'pending' "
    "AND (o.outcome = 'delivered' OR d.leased_by = %(worker)s) "
    "RETURNING d.id")
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
# Search's index (PostgresStore.index_search). The mark row, locked: one indexer at a time.
LOCK_INDEXED = "SELECT value FROM instance WHERE key = 'search_indexed' FOR UPDATE"
SETTLING = "SELECT value FROM instance WHERE key = 'search_settling'"
# The transactions writing to events now, one lock each: an insert takes it before its ids.
WRITING = (
    "SELECT virtualtransaction FROM pg_locks WHERE locktype = 'relation' "
    "AND mode = 'RowExclusiveLock' AND relation = 'events'::regclass "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
# A transaction holds the lock on its own virtual id for as long as it runs.
RUNNING = "SELECT count(*) FROM pg_locks WHERE virtualtransaction = ANY(%s)"
LAST_ID = "SELECT coalesce(max(id), 0) FROM events"
INDEX_EVENTS = (
    "WITH picked AS (SELECT id, encode(body, 'escape') AS body FROM events "
    "WHERE id > %s AND id <= %s ORDER BY id LIMIT %s), "
    "stored AS (INSERT INTO events_search (id, body) SELECT id, body FROM picked "
    "ON CONFLICT DO NOTHING) SELECT count(*), max(id) FROM picked")
SET_INSTANCE = (
    "INSERT INTO instance (key, value) VALUES (%s, %s) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value")


class PostgresStore(SqlStore):
    """The contract on PostgreSQL (see base.py and sql.py).

    `worker`: the store of a delivery worker, whose commits do not wait for the disk
    (synchronous_commit off, on its connections only), as on SQLite: what it writes (leases,
    attempts, outcomes) could be lost to a crash of the server and only repeat a call, which
    a crash can do anyway. The webhooks answered 2xx are written by the web processes, whose
    every commit waits for the disk; the next such commit makes the worker's durable too."""

    # And the driver's own, where we talk to the driver directly.
    unavailable = (*SqlStore.unavailable, psycopg.OperationalError, psycopg.InterfaceError)
    indexes_aside = True  # index_search: on a pooled connection (`_aside`)

    def __init__(self, url: str, *, timeout: float = 5.0, worker: bool = False):
        super().__init__(url, timeout=timeout, worker=worker)
        # The arguments SQLAlchemy's pool connects with: the same server, user and options.
        args, options = self.engine.dialect.create_connect_args(self.engine.url)
        if worker:
            options = lazy_commits(options)

            @sa_event.listens_for(self.engine, "do_connect")
            def _connect(_dialect: object, _record: object, _args: object,
                         params: dict[str, Any]) -> None:
                params.update(lazy_commits(params))

        self._connect = functools.partial(psycopg.connect, *args, **options, autocommit=True)
        self._lock = threading.Lock()  # `_held`
        self._connection: psycopg.Connection[Any] | None = None
        self._pid = 0

    @contextlib.contextmanager
    def _held(self) -> Iterator[psycopg.Connection[Any]]:
        """This store's own connection, one caller at a time (web requests arrive on
        threads): a driver error that means the database is unavailable raised as
        StoreUnavailable, and a connection it broke let go (the next caller connects again)."""
        with self._lock:
            try:
                yield self._own_connection()
            except self.unavailable as exc:
                raise StoreUnavailable.from_driver(exc) from exc
            finally:
                if self._connection is not None and self._connection.broken:
                    self._connection = None

    @contextlib.contextmanager
    def _direct(self) -> Iterator[psycopg.Connection[Any]]:
        """A write transaction on this store's own connection, in pipeline mode: committed
        when the block ends, rolled back if it raises. Statements are sent as they are
        executed and answered at the first result read (which waits for the answers to all
        sent so far) or at the commit. A result read after the block needs no round trip of
        its own. Each statement whose rows are read needs a cursor of its own: a cursor keeps
        its last statement's rows only."""
        with self._held() as db:
            try:
                with db.pipeline():
                    db.execute("BEGIN")
                    yield db
                    db.execute("COMMIT")
            except BaseException:
                if not db.broken:
                    with contextlib.suppress(psycopg.Error):  # the first error is the one
                        db.execute("ROLLBACK")
                raise

    def _alone(self, statement: str, params: Any) -> list[tuple[Any, ...]]:
        """One statement (a write, or the worker's next_due), run as a transaction of its own
        (the connection commits each statement outside a transaction block): one round trip,
        and no BEGIN, COMMIT or pipeline, which cost the client 140-200 us of CPU a
        transaction where the statement alone costs 55-65 (a claim of nothing, measured on
        this machine). Its rows."""
        with self._held() as db:
            return db.cursor().execute(statement, params).fetchall()

    @contextlib.contextmanager
    def _aside(self) -> Iterator[psycopg.Connection[Any]]:
        """A transaction on a connection of the pool, committed when the block ends: for
        work that must not hold up `_direct`'s (the worker's search indexing: with it on
        the store's connection, the worker's claims and outcomes waited behind it, and a
        webhook's 2xx to its Engati call took 16-19 ms at p99 at 300/s, 8.5-10.5 ms aside)."""
        try:
            pooled = self.engine.raw_connection()
            try:
                db: psycopg.Connection[Any] = pooled.driver_connection  # type: ignore[assignment]
                with db.transaction():
                    yield db
            finally:
                pooled.close()
        except self.unavailable as exc:
            raise StoreUnavailable.from_driver(exc) from exc

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

    def index_search(self, limit: int) -> int:
        """Index up to `limit` events after the mark, the next ones in id order. Ids are
        taken when an insert runs, not when it commits: an event committed after a later
        one, and indexed after the mark passed its id, would never be found. So the mark
        moves only as far as `search_settling` allows: the last id stored when it was
        taken, once every transaction then writing to events has ended (the mark waits for
        it meanwhile; search reads the events above the mark). Reading events blocks no
        webhook."""
        done = 0
        with self._aside() as db:
            mark = start = int(one(db.execute(LOCK_INDEXED))[0])
            settling = db.execute(SETTLING).fetchone()
            settled = settling[0] if settling else None
            upto, *waiting = settled.split() if settled else (str(mark),)
            last = int(upto)
            while not (waiting and one(db.execute(RUNNING, (waiting,)))[0]):
                count, top = one(db.execute(INDEX_EVENTS, (mark, last, limit - done)))
                done += count
                if done == limit:
                    mark = top
                    break
                mark = last  # everything up to it indexed, or never to commit
                # The next stretch: what is stored by now, and who may still store below it.
                # (Never below the mark: a purge may have taken the newest events.)
                last = max(mark, one(db.execute(LAST_ID))[0])
                waiting = [row[0] for row in db.execute(WRITING).fetchall()]
                if last == mark:
                    break
            settling_now = " ".join([str(last), *waiting])
            if mark != start or settling_now != settled:  # not when idle: two writes a second
                db.execute(SET_INSTANCE, ("search_indexed", str(mark)))
                db.execute(SET_INSTANCE, ("search_settling", settling_now))
        return done

    # --- the hot paths ---------------------------------------------------------------------

    def write_batch(self, batch: list[Received], refused: list[dict[str, Any]]) -> list[Receipt]:
        """As SqlStore's, in two round trips for the usual batch: ACCEPT, then the commit
        (a round trip more where an event has a key, a cancellation or a delivery's cancel
        key: the events, then their deliveries and lookups). Duplicates are answered and
        taken out, and cancellations applied, as there (a round trip more each: they are
        rare)."""
        with self._direct() as db:
            for row in refused:
                db.execute(UPSERT, row)
            if batch and all(map(usual, batch)):  # (none: refusal counts alone)
                ids, inserted, looked = self._accept(db, batch)
            else:
                ids = self._store_events(db, batch)
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
    def _accept(db: psycopg.Connection[Any], batch: list[Received]
                ) -> tuple[dict[int, int | None], Counter[int], Counter[int]]:
        """Store a batch of usual webhooks (see `usual`) in one statement, ACCEPT: each
        event's id, and how many deliveries and lookups each got (none: their dedup keys
        were taken)."""
        # Each delivery and lookup names its event by its place in the batch (ACCEPT says).
        rows = [delivery_row(n, item.mapping, d, item.received_at)
                for n, item in enumerate(batch, 1) for d in item.result.deliveries]
        fetches = [lookup_row(n, item.mapping, f, item.received_at)
                   for n, item in enumerate(batch, 1) for f in item.result.lookups]
        ids, planned, fetched = one(db.cursor().execute(ACCEPT, (
            *event_values(batch), json.dumps(rows), json.dumps(fetches))))
        inserted, looked = Counter(planned), Counter(fetched)
        # due_now by the rows' event_id, here their event's place.
        if due_now(rows, Counter({n: inserted[i] for n, i in enumerate(ids, 1)})):
            db.execute(wake.NOTIFY)  # the idle workers claim it at once (wake.py)
        return dict(enumerate(ids)), inserted, looked

    @staticmethod
    def _store_events(db: psycopg.Connection[Any], batch: list[Received]
                      ) -> dict[int, int | None]:
        """Insert a batch's events, a statement for the plain ones and one for each keyed
        one; their ids by their place in the batch (None: a keyed one stored before)."""
        # Keyed events in key order: two transactions never wait for each other's keys.
        keyed = sorted((i for i, item in enumerate(batch) if event_key(item.result)),
                       key=lambda i: event_key(batch[i].result) or "")
        plain = sorted(set(range(len(batch))) - set(keyed))
        ids: dict[int, int | None] = {}
        if plain:
            stored = db.cursor().execute(INSERT_EVENTS, event_values(batch[i] for i in plain))
            ids.update(zip(plain, sorted(row[0] for row in stored.fetchall()), strict=True))
        for i in keyed:  # failed or skipped, with a key: rare, one at a time
            found = db.cursor().execute(INSERT_KEYED, event_values([batch[i]])).fetchone()
            ids[i] = found[0] if found else None
        return ids

    @staticmethod
    def _plan(db: psycopg.Connection[Any], batch: list[Received],
              ids: dict[int, int | None]) -> tuple[Counter[int], Counter[int]]:
        """Insert the stored events' deliveries and lookups, a statement each; how many of
        each every event got (none: their dedup keys were taken)."""
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
        sent = [(db.cursor().execute(statement, (json.dumps(planned),)), counts)
                for statement, planned, counts in ((INSERT_DELIVERIES, rows, inserted),
                                                   (INSERT_LOOKUPS, fetches, looked))
                if planned]
        for cursor, counts in sent:
            counts.update(row[0] for row in cursor.fetchall())
        if due_now(rows, inserted):  # the idle workers claim it at once (wake.py)
            db.execute(wake.NOTIFY)
        return inserted, looked

    def next_due(self, now: float) -> float | None:
        """As SqlStore's, as one statement on the store's own connection (`_alone`): through
        the pool it was the pool's ping, BEGIN, the query and COMMIT, twice a second for an
        idle worker, and a quarter of its CPU (issue 17: under 1% of a core)."""
        due: float | None = self._alone(NEXT_DUE, (now,))[0][0]
        return due

    def claim(self, worker: str, limit: int, now: float, lease: float) -> list[Claimed]:
        """One statement, a transaction of its own."""
        claimed = self._alone(CLAIM, (now + lease, worker, now, now, limit))
        return sorted((Claimed(*row) for row in claimed), key=lambda c: c.id)

    def record_many(self, outcomes: list[Attempt], worker: str, now: float) -> list[bool]:
        """As SqlStore's, in one statement (RECORD), a transaction of its own. (The leases
        read first, then a statement per attempt and per outcome, cost the worker more CPU
        than the rest of a delivery at e2e's load.) A delivery that comes twice has its
        second outcome in a second statement, which sees what the first set: one UPDATE
        sets a row once, from whichever of its joined rows it meets first."""
        outcomes = [attempt_row(attempt) for attempt in outcomes]
        rounds: list[list[tuple[int, Attempt]]] = []
        seen: Counter[int] = Counter()
        for n, attempt in enumerate(outcomes):
            if seen[attempt.delivery_id] == len(rounds):
                rounds.append([])
            rounds[seen[attempt.delivery_id]].append((n, attempt))
            seen[attempt.delivery_id] += 1
        kept = [False] * len(outcomes)
        for each in rounds:
            set_ = {row[0] for row in self._alone(RECORD, {
                "rows": record_rows(each, now), "ids": [a.delivery_id for _, a in each],
                "worker": worker, "now": now})}
            for n, attempt in each:
                kept[n] = attempt.delivery_id in set_
        return kept

def usual(item: Received) -> bool:
    """Whether a webhook is one ACCEPT stores: no key of its own (a failed or skipped event's,
    which INSERT_KEYED looks for), no cancellations to apply, no delivery a kept cancellation
    may name (_plan looks for those before inserting)."""
    result = item.result
    return (not event_key(result) and not result.cancels
            and all(d.cancel_key is None for d in result.deliveries))


def one(cursor: psycopg.Cursor[Any]) -> Any:
    """A statement's one row (an aggregate's, or a row known to be there)."""
    row = cursor.fetchone()
    assert row is not None, "a statement of one row answered none"
    return row


def record_rows(numbered: list[tuple[int, Attempt]], now: float) -> str:
    """RECORD's rows: the attempts, with the status and due time each would set, as JSON."""
    return json.dumps([{
        "n": n, "delivery_id": attempt.delivery_id, "started_at": attempt.started_at,
        "duration_ms": attempt.duration_ms, "http_status": attempt.http_status,
        "engati_code": attempt.engati_code, "outcome": attempt.outcome,
        "error": attempt.error, "failure": attempt.failure,
        "status": Outcome(attempt.outcome).status,
        "next_at": attempt.next_at if attempt.next_at is not None else now}
        for n, attempt in numbered])


def lazy_commits(options: Mapping[str, Any]) -> dict[str, Any]:
    """Connection options whose commits do not wait for the disk, beside the URL's own."""
    given = options.get("options", "")
    return {**options, "options": f"{given} -c synchronous_commit=off".strip()}


def event_values(items: Iterable[Received]) -> tuple[list[bytes], str]:
    """INSERT_EVENTS's parameters for webhooks: their bodies, and the rest of their rows
    (rows.event_row's) as JSON, numbered from 1 as the bodies' array is."""
    bodies, rows = [], []
    for n, item in enumerate(items, 1):
        bodies.append(item.body)
        rows.append({**event_row(item), "n": n, "body": None})
    return bodies, json.dumps(rows)


def cancel(db: psycopg.Connection[Any], event_id: int, item: Received) -> int:
    """cancels.apply and the event's note, through the driver; how many it cancelled."""
    now, count = item.received_at, 0
    for cancellation in item.result.cancels:
        targets = list(cancellation.mappings or (item.mapping,))
        for target in targets:
            db.execute(KEEP_CANCEL, (target, cancellation.key, event_id, now,
                                     now + cancellation.keep))
        count += len(db.cursor().execute(CANCEL_PENDING, (
            now, cancelled_by(event_id), targets, cancellation.key, now)).fetchall())
    db.execute(SET_NOTE, (note(item, count), event_id))
    return count
