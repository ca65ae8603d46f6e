"""The store contract: one class over SQLAlchemy Core, for SQLite and PostgreSQL alike (on
SQLite, the hot writes take the shorter way of sqlite_direct.py).

An event and its planned deliveries are written in one transaction, before the sender is
answered; the worker claims due deliveries with a lease, so that a crashed worker's claims
are taken over once the lease runs out (at-least-once: a crash may repeat the call that was in
flight, never skip one).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections import Counter
from collections.abc import Iterator
from typing import Any

import alembic.command
import alembic.config
import sqlalchemy as sa
from alembic.migration import MigrationContext
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql, sqlite

from relay.errors import RelayError, StoreUnavailable
from relay.mapping import Delivery, Result
from relay.model import Attempt, Claimed, Outcome, Receipt
from relay.store.base import keeps
from relay.store.group_commit import GroupCommit, WriterQueue
from relay.store.history import History, event_key, event_row, event_status, storable
from relay.store.refusals import UPSERT, RefusalCounter
from relay.store.sqlite import SqliteDirect
from relay.store.tables import attempts, bots, deliveries, events

log = logging.getLogger("relay.store")
_FLUSH = object()  # a GroupCommit item that only asks for the refusal counts to be written
# SQLAlchemy's wrappers, and the driver's own error where we talk to the driver directly
# (BEGIN IMMEDIATE, checkpoints).
_UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, sqlite3.OperationalError)


class Store(History):
    """The store contract. Reading and tidying the history for operators: history.py."""

    def __init__(self, url: str, *, timeout: float = 5.0, worker: bool = False):
        """`worker`: the store of a delivery worker, whose SQLite commits do not wait for
        the disk. What it writes (leases, attempts, outcomes) could be lost to a power cut
        and only repeat a call, which a crash can do anyway; the webhooks answered 2xx are
        written by the web processes, whose every commit is synced. The next synced commit
        or checkpoint makes the worker's writes durable too, and the worker checkpoints
        (see `checkpoint`) so that no webhook waits for one."""
        self.url = url
        self.engine = _engine(url, timeout, worker)
        self._insert = postgresql.insert if self.engine.dialect.name == "postgresql" else (
            sqlite.insert)
        # Statements built once and given their values as parameters: building them anew
        # for each webhook cost more CPU than everything else the relay does with it.
        self._insert_event = events.insert().returning(events.c.id,
                                                       sort_by_parameter_order=True)
        self._insert_delivery = (self._insert(deliveries).on_conflict_do_nothing()
                                 .returning(deliveries.c.event_id))
        self._first_event = sa.select(deliveries.c.event_id).where(
            deliveries.c.mapping == sa.bindparam("mapping"),
            deliveries.c.dedup_key == sa.bindparam("key"))
        self._insert_keyed_event = (self._insert(events).on_conflict_do_nothing()
                                    .returning(events.c.id))
        self._first_keyed = sa.select(events.c.id).where(
            events.c.mapping == sa.bindparam("mapping"),
            events.c.status == sa.bindparam("status"),
            events.c.dedup_key == sa.bindparam("key"))
        self.refusals = RefusalCounter()
        self._accepts = GroupCommit(self._accept_many)
        # The worker's statements, likewise.
        due = (
            sa.select(deliveries.c.id)
            .where(deliveries.c.status == "pending", deliveries.c.next_at <= sa.bindparam("now"),
                   sa.or_(deliveries.c.lease_until.is_(None),
                          deliveries.c.lease_until <= sa.bindparam("now")))
            .order_by(deliveries.c.next_at)
            .limit(sa.bindparam("limit"))
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite serialises writers anyway
        )
        self._claim = (
            deliveries.update()
            .where(deliveries.c.id.in_(due.scalar_subquery()))
            .values(lease_until=sa.bindparam("until"), leased_by=sa.bindparam("worker"))
            .returning(deliveries.c.id, deliveries.c.event_id, deliveries.c.mapping,
                       deliveries.c.flow_key, deliveries.c.channel, deliveries.c.phone,
                       deliveries.c.attributes, deliveries.c.attempts,
                       deliveries.c.created_at, deliveries.c.lease_until))
        self._leases = (
            sa.select(deliveries.c.id, deliveries.c.status, deliveries.c.leased_by)
            .where(deliveries.c.id.in_(sa.bindparam("ids", expanding=True))).with_for_update())
        self._outcome = deliveries.update().where(deliveries.c.id == sa.bindparam("row")).values(
            status=sa.bindparam("new_status"), attempts=deliveries.c.attempts + 1,
            next_at=sa.bindparam("due"), lease_until=None, leased_by=None,
            updated_at=sa.bindparam("now"), last_error=sa.bindparam("error"))
        database = self.engine.url.database
        sqlite_file = (self.engine.dialect.name == "sqlite" and database
                       and database != ":memory:")
        self._writers: contextlib.AbstractContextManager[Any] = (
            WriterQueue(f"{database}.lock", timeout) if sqlite_file else contextlib.nullcontext())
        # SQLite's hot writes go through the driver (sqlite_direct.py).
        self._direct = SqliteDirect(self.engine, self._writers) if sqlite_file else None

    def upgrade(self) -> tuple[str | None, str | None]:
        """Bring the schema to the latest migration (an empty database gets every one); the
        revisions before and after (None before: the database was empty)."""
        config = alembic.config.Config()
        config.set_main_option("script_location", "relay.store:migrations")
        with self._tx() as conn:
            before = MigrationContext.configure(conn).get_current_revision()
            config.attributes["connection"] = conn
            alembic.command.upgrade(config, "head")
            after = MigrationContext.configure(conn).get_current_revision()
        return before, after

    def ping(self) -> None:
        with self._tx() as conn:
            conn.execute(sa.select(sa.func.count()).select_from(events).where(sa.false()))

    def dispose(self) -> None:
        self.engine.dispose()

    def checkpoint(self) -> None:
        """Copy SQLite's write-ahead log into the database file, without waiting for anyone
        (the worker calls this every second; a no-op on PostgreSQL)."""
        if self.engine.dialect.name != "sqlite":
            return
        try:
            connection = self.engine.raw_connection()
            try:
                connection.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                connection.close()
        except (*_UNAVAILABLE, sqlite3.Error) as exc:
            raise StoreUnavailable.from_driver(exc) from exc

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sa.Connection]:
        try:
            with self._writers, self.engine.begin() as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise StoreUnavailable.from_driver(exc) from exc

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
        """Store an event and its planned deliveries; return once they are committed.

        When every planned delivery's dedup key was accepted before, nothing is stored and
        the first event's id comes back as a duplicate. Concurrent calls share transactions
        (see GroupCommit); each returns only after the commit that holds its event.
        """
        return self._accepts.submit((mapping, raw, headers, query, result, now))

    def refuse(self, mapping: str, reason: str, now: float) -> bool:
        """Count a request refused for its signature (why, never what it carried). Written
        with the next batch of webhooks, or on its own if none comes for a while (see
        relay/refusals.py): never a commit of its own per refusal. True for the first of
        its kind for the mapping this minute (the one worth a log line)."""
        due, first = self.refusals.add(mapping, reason, now)
        if due:
            try:
                self._accepts.submit((_FLUSH, now))
            except Exception as exc:  # counting a refusal must never fail its answer
                log.warning("refusal counts not written: %s", exc)
        return first

    def flush(self, now: float) -> None:
        """Write the refusals counted so far now (for tests: otherwise they go with the
        next batch, or within FLUSH_EVERY seconds)."""
        self._accepts.submit((_FLUSH, now))

    def _accept_many(self, batch: list[tuple]) -> list[Receipt | Exception | None]:
        """Write a batch of GroupCommit's items: webhooks, and requests to write the refusals
        counted so far (answered None), which every batch writes anyway."""
        webhooks = [item for item in batch if item[0] is not _FLUSH]
        refused = self.refusals.take(max(item[-1] for item in batch))
        try:
            write = self._direct.accept if self._direct else self._insert_batch
            receipts = iter([Receipt(*receipt) for receipt in write(webhooks, refused)])
            return [None if item[0] is _FLUSH else next(receipts) for item in batch]
        except StoreUnavailable:
            raise
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
            # One webhook the database refuses must not fail those that share its batch
            # (the refusal counts taken for it are dropped: they are best effort).
            return [self._accept_many([item])[0] for item in batch]

    def _insert_batch(self, batch: list[tuple],
                      refused: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
        """A batch of webhooks in a few statements, however many there are: the events, then
        their deliveries; an event whose every delivery was accepted before is taken out
        again and answered as a duplicate of the first, and so is a failed or skipped event
        whose key was stored before. Each webhook's (status, event id, deliveries planned).
        SQLite takes the shorter way of sqlite_direct.py."""
        with self._tx() as conn:
            if refused:
                conn.execute(sa.text(UPSERT), refused)
            # Keyed events in key order: two transactions never wait for each other's keys.
            keyed = sorted((i for i, item in enumerate(batch) if event_key(item[4])),
                           key=lambda i: event_key(batch[i][4]) or "")
            plain = sorted(set(range(len(batch))) - set(keyed))
            ids: dict[int, int | None] = dict(zip(plain, conn.execute(
                self._insert_event, [event_row(*batch[i]) for i in plain]).scalars().all()
                if plain else [], strict=True))
            for i in keyed:  # failed or skipped, with a key: rare, one at a time
                ids[i] = conn.execute(self._insert_keyed_event,
                                      event_row(*batch[i])).scalar_one_or_none()
            planned = [self._delivery_row(ids[i], mapping, d, now)
                       for i, (mapping, _, _, _, result, now) in enumerate(batch)
                       for d in result.deliveries]
            inserted = Counter(conn.execute(self._insert_delivery, planned).scalars().all()
                               if planned else [])
            receipts, repeated = [], []
            for i, (mapping, _, _, _, result, _) in enumerate(batch):
                event_id = ids[i]
                if event_id is None:
                    first = conn.execute(self._first_keyed, {
                        "mapping": mapping, "status": event_status(result),
                        "key": event_key(result)}).scalar_one()
                    receipts.append(("duplicate", first, 0))
                elif result.deliveries and not inserted[event_id]:
                    repeated.append(event_id)
                    first = conn.execute(self._first_event, {
                        "mapping": mapping,
                        "key": storable(result.deliveries[0].dedup_key)}).scalar_one()
                    receipts.append(("duplicate", first, 0))
                else:
                    receipts.append((event_status(result), event_id, inserted[event_id]))
            if repeated:
                conn.execute(events.delete().where(events.c.id.in_(repeated)))
        return receipts

    def _plan(self, conn: sa.Connection, event_id: int, mapping: str, result: Result,
              now: float) -> int:
        """Insert the planned deliveries whose dedup key is new; how many were."""
        rows = [self._delivery_row(event_id, mapping, d, now) for d in result.deliveries]
        return len(conn.execute(self._insert_delivery, rows).all()) if rows else 0

    @staticmethod
    def _delivery_row(event_id: int, mapping: str, d: Delivery, now: float) -> dict[str, Any]:
        return {"event_id": event_id, "mapping": mapping, "item": d.item,
                "dedup_key": storable(d.dedup_key), "flow_key": d.flow_key,
                "channel": d.channel, "phone": d.phone, "attributes": storable(d.attributes),
                "status": "pending", "attempts": 0, "next_at": now, "created_at": now,
                "updated_at": now}

    # --- worker ----------------------------------------------------------------------------

    def claim(self, worker: str, limit: int, now: float, lease: float) -> list[Claimed]:
        """Lease up to `limit` due deliveries to `worker`, oldest first."""
        if self._direct:
            return self._direct.claim(worker, limit, now, lease)
        with self._tx() as conn:
            rows = conn.execute(self._claim, {"now": now, "limit": limit,
                                              "until": now + lease, "worker": worker}).all()
        return sorted((Claimed(*row) for row in rows), key=lambda c: c.id)

    def record_many(self, outcomes: list[Attempt], worker: str, now: float) -> list[bool]:
        """Record several attempts in one transaction (one commit, one sync to disk).

        Each result is False where the worker's lease had been lost meanwhile. Three
        statements whatever the batch's size: with hundreds of calls finishing together,
        per-row statements would cost more CPU than the calls themselves.
        """
        if self._direct:
            return self._direct.record_many(outcomes, worker, now)
        ids = [attempt.delivery_id for attempt in outcomes]
        with self._tx() as conn:
            current = {row.id: (row.status, row.leased_by)
                       for row in conn.execute(self._leases, {"ids": ids})}
            kept = [keeps(current.get(attempt.delivery_id), attempt, worker)
                    for attempt in outcomes]
            conn.execute(attempts.insert(), [
                {"delivery_id": attempt.delivery_id, "started_at": attempt.started_at,
                 "duration_ms": attempt.duration_ms, "http_status": attempt.http_status,
                 "engati_code": attempt.engati_code, "outcome": attempt.outcome,
                 "error": attempt.error, "worker": worker}
                for attempt in outcomes])
            changes = [
                {"row": attempt.delivery_id, "new_status": Outcome(attempt.outcome).status,
                 "due": attempt.next_at if attempt.next_at is not None else now,
                 "error": attempt.error, "now": now}
                for attempt, keep in zip(outcomes, kept, strict=True) if keep]
            if changes:
                conn.execute(self._outcome, changes)
        return kept

    def defer(self, claimed: Claimed, worker: str, next_at: float, now: float) -> None:
        """Give a delivery back untried, due again at `next_at` (its bot is paced or paused)."""
        with self._tx() as conn:
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id == claimed.id, deliveries.c.leased_by == worker)
                .values(next_at=next_at, lease_until=None, leased_by=None, updated_at=now))

    def release(self, ids: list[int], worker: str) -> None:
        """Give back leased deliveries untried (a worker shutting down)."""
        if not ids:
            return
        with self._tx() as conn:
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id.in_(ids), deliveries.c.leased_by == worker)
                .values(lease_until=None, leased_by=None))

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


def database_url(url: str) -> str:
    """DATABASE_URL as SQLAlchemy takes it: `postgres://` and `postgresql://` (what hosts
    hand out) mean psycopg 3, the driver the relay installs, not SQLAlchemy's default."""
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):]
    return url


def _engine(url: str, timeout: float, worker: bool) -> sa.Engine:
    url = database_url(url)
    if not url.startswith("sqlite"):
        try:
            return sa.create_engine(url, pool_pre_ping=True)
        except ModuleNotFoundError as exc:
            hint = ("pip install -e '.[postgres]'" if url.startswith("postgresql") else
                    "the relay runs on SQLite (sqlite:///relay.db) or PostgreSQL")
            raise RelayError(f"DATABASE_URL needs a driver that is not installed ({exc.name}): "
                             f"{hint}") from None
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
            raise RelayError(f"DATABASE_URL is not a database URL SQLAlchemy can use ({exc}); "
                             "use sqlite:///relay.db or postgresql://user:pass@host/db") from None
    # Every transaction ends in a commit or a rollback: nothing to reset when a connection
    # goes back to the pool.
    engine = sa.create_engine(url, connect_args={"timeout": timeout}, pool_reset_on_return=None)

    @sa_event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below); the driver's own transaction handling would
        # start transactions as readers and fail to upgrade them under contention.
        dbapi_connection.isolation_level = None
        # Web processes leave checkpoints to the worker (up to 64 MB of log, as a safety net
        # should no worker run): a checkpoint in a request made that webhook wait 20-50 ms.
        for pragma in ("journal_mode=WAL", "foreign_keys=ON",
                       "synchronous=NORMAL" if worker else "synchronous=FULL",
                       "wal_autocheckpoint=1000" if worker else "wal_autocheckpoint=16000",
                       f"busy_timeout={int(timeout * 1000)}"):
            dbapi_connection.execute(f"PRAGMA {pragma}")

    @sa_event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # Take the write lock up front: two writers never deadlock, they queue. Through the
        # driver's connection: SQLAlchemy's statement machinery cost more than the BEGIN.
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE")

    return engine
