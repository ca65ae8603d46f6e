"""The store over SQLAlchemy Core: PostgreSQL's backend, and SQLite's for all but its hot
paths (sqlite.py overrides those).

Writes take a write transaction (`_write`); reads a read transaction (`_read`), which on
SQLite waits for no writer. The statements of the hot paths (accept, claim, record) are
built once and given their values as parameters: building them anew for each webhook cost
more CPU than everything else the relay does with it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import alembic.command
import alembic.config
import sqlalchemy as sa
from alembic.migration import MigrationContext
from sqlalchemy.dialects import postgresql

from relay.errors import RelayError, StoreUnavailable
from relay.mapping import Result
from relay.model import (
    Attempt,
    Claimed,
    ClaimedLookup,
    DeliveryStatus,
    EventStatus,
    Looked,
    Outcome,
    Receipt,
    Received,
)
from relay.store import alerts, capture, charts, history, mapping_stats, sessions, wake
from relay.store import cancels as cancels_sql
from relay.store import lookups as lookups_sql
from relay.store.base import Store, Waiter, keeps_each
from relay.store.group_commit import GroupCommit
from relay.store.refusals import UPSERT, RefusalCounter
from relay.store.rows import attempt_row, delivery_row, event_key, event_row, lookup_row, storable
from relay.store.tables import attempts, bots, deliveries, events, lookups, refusals

log = logging.getLogger("relay.store")
# An execution option that marks a read transaction (the SQLite engine begins it deferred).
READ = "relay_read"
# A purge deletes in transactions of about PURGE_SLICE seconds: webhooks wait for the write
# lock meanwhile, and on SQLite each event leaves search's index too (1,000 bodies of 2 KB
# took 640 ms in one transaction). The first holds PURGE_FIRST events; later ones as many
# as the last one's time says fit.
PURGE_SLICE = 0.02
PURGE_FIRST = 100


@dataclass(frozen=True)
class _Flush:
    """A GroupCommit item that only asks for the refusal counts to be written."""

    now: float


def due_now(rows: list[dict[str, Any]], inserted: Counter[int]) -> bool:
    """Whether a batch's delivery rows (rows.delivery_row) hold one that was inserted (its
    event's count of inserted rows is not 0) and is due now: what wakes the workers."""
    return any(inserted[row["event_id"]] and row["status"] == DeliveryStatus.PENDING
               and row["next_at"] <= row["updated_at"] for row in rows)


class SqlStore(Store):
    """The contract over SQLAlchemy Core (see base.py)."""

    # What the driver raises, wrapped by SQLAlchemy, when the database is away or locked.
    unavailable: ClassVar[tuple[type[Exception], ...]] = (
        sa.exc.OperationalError, sa.exc.InterfaceError)

    def __init__(self, url: str, *, timeout: float = 5.0, worker: bool = False):
        """`worker`: the store of a delivery worker (see sqlite.py: its commits need not
        wait for the disk)."""
        self.url = url
        self.engine = self.open_engine(url, timeout, worker)
        # Our own processes' queue for the write lock: SQLite's (sqlite.py); none here.
        self._writers: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        self._insert_event = events.insert().returning(events.c.id,
                                                       sort_by_parameter_order=True)
        self._insert_delivery = (self.insert(deliveries).on_conflict_do_nothing()
                                 .returning(deliveries.c.event_id))
        self._first_event = sa.select(deliveries.c.event_id).where(
            deliveries.c.mapping == sa.bindparam("mapping"),
            deliveries.c.dedup_key == sa.bindparam("key"))
        self._insert_lookup = (self.insert(lookups).on_conflict_do_nothing()
                               .returning(lookups.c.event_id))
        self._first_lookup = sa.select(lookups.c.event_id).where(
            lookups.c.mapping == sa.bindparam("mapping"),
            lookups.c.dedup_key == sa.bindparam("key"))
        self._insert_keyed_event = (self.insert(events).on_conflict_do_nothing()
                                    .returning(events.c.id))
        self._first_keyed = sa.select(events.c.id).where(
            events.c.mapping == sa.bindparam("mapping"),
            events.c.status == sa.bindparam("status"),
            events.c.dedup_key == sa.bindparam("key"))
        self._notify = sa.text(wake.NOTIFY)
        self.refusals = RefusalCounter()
        self._accepts: GroupCommit = GroupCommit(self._accept_many)
        d = deliveries.c
        due = (
            sa.select(d.id)
            .where(d.status == DeliveryStatus.PENDING, d.next_at <= sa.bindparam("now"),
                   sa.or_(d.lease_until.is_(None), d.lease_until <= sa.bindparam("now")))
            .order_by(d.next_at).limit(sa.bindparam("limit"))
            .with_for_update(skip_locked=True)  # workers on PostgreSQL skip each other's rows
        )
        self._claim = (
            deliveries.update().where(d.id.in_(due.scalar_subquery()))
            .values(lease_until=sa.bindparam("until"), leased_by=sa.bindparam("worker"))
            .returning(d.id, d.event_id, d.mapping, d.flow_key, d.channel, d.phone,
                       d.attributes, d.attempts, d.created_at, d.lease_until))
        self._leases = (sa.select(d.id, d.status, d.leased_by)
                        .where(d.id.in_(sa.bindparam("ids", expanding=True))).with_for_update())
        self._outcome = deliveries.update().where(d.id == sa.bindparam("row")).values(
            status=sa.bindparam("new_status"), attempts=d.attempts + 1,
            next_at=sa.bindparam("due"), lease_until=None, leased_by=None,
            updated_at=sa.bindparam("now"), last_error=sa.bindparam("error"),
            failure=sa.bindparam("kind"))

    def insert(self, table: sa.Table) -> Any:
        """The dialect's INSERT, which has ON CONFLICT DO NOTHING."""
        return postgresql.insert(table)

    @staticmethod
    def open_engine(url: str, timeout: float, worker: bool) -> sa.Engine:
        """The engine for a database server (the SQLite backend opens its own)."""
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

    @contextlib.contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """A write transaction, after our own processes' queue for the write lock."""
        try:
            with self._writers, self.engine.begin() as conn:
                yield conn
        except self.unavailable as exc:
            raise StoreUnavailable.from_driver(exc) from exc

    @contextlib.contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        """A read transaction: one snapshot, and no write lock waited for."""
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{READ: True})
                with conn.begin():
                    yield conn
        except self.unavailable as exc:
            raise StoreUnavailable.from_driver(exc) from exc

    # --- running the store -----------------------------------------------------------------

    def upgrade(self) -> tuple[str | None, str | None]:
        config = alembic.config.Config()
        config.set_main_option("script_location", "relay.store:migrations")
        with self._write() as conn:
            before = MigrationContext.configure(conn).get_current_revision()
            config.attributes["connection"] = conn
            alembic.command.upgrade(config, "head")
            after = MigrationContext.configure(conn).get_current_revision()
        return before, after

    def ping(self) -> None:
        with self._read() as conn:
            conn.execute(sa.select(sa.func.count()).select_from(events).where(sa.false()))

    def dispose(self) -> None:
        self.engine.dispose()

    def checkpoint(self) -> None:
        """Nothing to do: a server's commits are durable (sqlite.py has a log to copy)."""

    # --- inbound ---------------------------------------------------------------------------

    def accept(self, received: Received) -> Receipt:
        """Concurrent calls share transactions (see GroupCommit); each returns only after the
        commit that holds its event."""
        receipt: Receipt = self._accepts.submit(received)
        return receipt

    def accept_many(self, received: list[Received]) -> list[Receipt | Exception]:
        """As many webhooks as one batch of the group commit takes, with whatever other
        threads hand in meanwhile."""
        return self._accepts.submit_many(received)

    def refuse(self, mapping: str, reason: str, now: float) -> bool:
        """Written with the next batch of webhooks, or on its own if none comes for a while
        (see refusals.py)."""
        due, first = self.refusals.add(mapping, reason, now)
        if due:
            try:
                self._accepts.submit(_Flush(now))
            except Exception as exc:  # counting a refusal must never fail its answer
                log.warning("refusal counts not written: %s", exc)
        return first

    def flush(self, now: float) -> None:
        self._accepts.submit(_Flush(now))

    def _accept_many(self, batch: list[Received | _Flush]) -> list[Receipt | Exception | None]:
        """Write a batch of GroupCommit's items: webhooks, and requests to write the refusals
        counted so far (answered None), which every batch writes anyway."""
        webhooks = [item for item in batch if isinstance(item, Received)]
        refused = self.refusals.take(max(
            item.received_at if isinstance(item, Received) else item.now for item in batch))
        try:
            receipts = iter(self.write_batch(webhooks, refused))
            return [next(receipts) if isinstance(item, Received) else None for item in batch]
        except StoreUnavailable:
            raise
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
            # One webhook the database refuses must not fail those that share its batch
            # (the refusal counts taken for it are dropped: they are best effort).
            return [self._accept_many([item])[0] for item in batch]

    def write_batch(self, batch: list[Received], refused: list[dict[str, Any]]) -> list[Receipt]:
        """A batch of webhooks and the refusal counts, in one transaction and a few
        statements however many webhooks there are: the events, then their deliveries; an
        event whose every delivery was accepted before is taken out again and answered as a
        duplicate of the first, and so is a failed or skipped event whose key was stored
        before."""
        with self._write() as conn:
            if refused:
                conn.execute(sa.text(UPSERT), refused)
            # Keyed events in key order: two transactions never wait for each other's keys.
            keyed = sorted((i for i, item in enumerate(batch) if event_key(item.result)),
                           key=lambda i: event_key(batch[i].result) or "")
            plain = sorted(set(range(len(batch))) - set(keyed))
            ids: dict[int, int | None] = dict(zip(plain, conn.execute(
                self._insert_event, [event_row(batch[i]) for i in plain]).scalars().all()
                if plain else [], strict=True))
            for i in keyed:  # failed or skipped, with a key: rare, one at a time
                ids[i] = conn.execute(self._insert_keyed_event,
                                      event_row(batch[i])).scalar_one_or_none()
            planned = cancels_sql.stored_cancelled(conn, [
                delivery_row(event_id, item.mapping, d, item.received_at)
                for item, event_id in ((item, ids[i]) for i, item in enumerate(batch))
                if event_id is not None for d in item.result.deliveries])
            inserted = Counter(conn.execute(self._insert_delivery, planned).scalars().all()
                               if planned else [])
            fetches = [lookup_row(event_id, item.mapping, f, item.received_at)
                       for item, event_id in ((item, ids[i]) for i, item in enumerate(batch))
                       if event_id is not None for f in item.result.lookups]
            looked = Counter(conn.execute(self._insert_lookup, fetches).scalars().all()
                             if fetches else [])
            receipts, repeated = [], []
            for i, item in enumerate(batch):
                event_id, result = ids[i], item.result
                if event_id is None:
                    first = conn.execute(self._first_keyed, {
                        "mapping": item.mapping, "status": EventStatus.of(result.status),
                        "key": event_key(result)}).scalar_one()
                    receipts.append(Receipt(EventStatus.DUPLICATE, first))
                elif ((result.deliveries or result.lookups)
                      and not inserted[event_id] and not looked[event_id]):
                    repeated.append(event_id)
                    first_of, planned_first = ((self._first_event, result.deliveries[0])
                                               if result.deliveries else
                                               (self._first_lookup, result.lookups[0]))
                    first = conn.execute(first_of, {
                        "mapping": item.mapping,
                        "key": storable(planned_first.dedup_key)}).scalar_one()
                    receipts.append(Receipt(EventStatus.DUPLICATE, first))
                else:
                    receipts.append(Receipt(EventStatus.of(result.status), event_id,
                                            inserted[event_id], looked[event_id]))
            if repeated:
                conn.execute(events.delete().where(events.c.id.in_(repeated)))
            receipts = [self._cancel(conn, receipt, item)
                        if item.result.cancels and receipt.status != EventStatus.DUPLICATE
                        else receipt for item, receipt in zip(batch, receipts, strict=True)]
            if due_now(planned, inserted):
                self._wake(conn)  # one statement per batch, only when one is due now
        return receipts

    def _wake(self, conn: sa.Connection) -> None:
        """Wake the idle workers to claim what this transaction makes due now (wake.py): the
        server notifies them when it commits, once however often it was asked. SQLite's
        workers only poll (sqlite.py)."""
        conn.execute(self._notify)

    def waiter(self) -> Waiter | None:
        """A listener for the NOTIFY that `_wake` sends (wake.py)."""
        return wake.Listener(self.url)

    def _cancel(self, conn: sa.Connection, receipt: Receipt, item: Received) -> Receipt:
        """Apply a webhook's cancellations, and say in its event's note what they did."""
        count = cancels_sql.apply(conn, self.insert, receipt.event_id, item.mapping,
                                  item.result.cancels, item.received_at)
        conn.execute(events.update().where(events.c.id == receipt.event_id).values(
            note=cancels_sql.note(item, count)))
        return replace(receipt, cancelled=count)

    # --- the worker ------------------------------------------------------------------------

    def claim(self, worker: str, limit: int, now: float, lease: float) -> list[Claimed]:
        with self._write() as conn:
            rows = conn.execute(self._claim, {"now": now, "limit": limit,
                                              "until": now + lease, "worker": worker}).all()
        return sorted((Claimed(**row._mapping) for row in rows), key=lambda c: c.id)

    def record_many(self, outcomes: list[Attempt], worker: str, now: float) -> list[bool]:
        """Three statements whatever the batch's size: with hundreds of calls finishing
        together, per-row statements would cost more CPU than the calls themselves."""
        outcomes = [attempt_row(attempt) for attempt in outcomes]
        ids = [attempt.delivery_id for attempt in outcomes]
        with self._write() as conn:
            current = {row.id: (row.status, row.leased_by)
                       for row in conn.execute(self._leases, {"ids": ids})}
            kept = keeps_each(current, outcomes, worker)
            conn.execute(attempts.insert(), [
                {"delivery_id": attempt.delivery_id, "started_at": attempt.started_at,
                 "duration_ms": attempt.duration_ms, "http_status": attempt.http_status,
                 "engati_code": attempt.engati_code, "outcome": attempt.outcome,
                 "error": attempt.error, "failure": attempt.failure, "worker": worker}
                for attempt in outcomes])
            changes = [
                {"row": attempt.delivery_id, "new_status": Outcome(attempt.outcome).status,
                 "due": attempt.next_at if attempt.next_at is not None else now,
                 "error": attempt.error, "kind": attempt.failure, "now": now}
                for attempt, keep in zip(outcomes, kept, strict=True) if keep]
            if changes:
                conn.execute(self._outcome, changes)
        return kept

    def defer(self, claimed: Claimed, worker: str, next_at: float, now: float) -> None:
        with self._write() as conn:
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id == claimed.id, deliveries.c.leased_by == worker)
                .values(next_at=next_at, lease_until=None, leased_by=None, updated_at=now))

    def release(self, ids: list[int], worker: str) -> None:
        if not ids:
            return
        with self._write() as conn:
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id.in_(ids), deliveries.c.leased_by == worker)
                .values(lease_until=None, leased_by=None))
            self._wake(conn)  # another worker takes them now, not at its next poll

    def next_due(self, now: float) -> float | None:
        with self._read() as conn:
            return history.next_due(conn, now)

    def claim_lookups(self, worker: str, limit: int, now: float,
                      lease: float) -> list[ClaimedLookup]:
        with self._write() as conn:
            return lookups_sql.claim(conn, worker, limit, now, lease)

    def finish_lookup(self, looked: Looked, worker: str, now: float) -> bool:
        with self._write() as conn:
            return lookups_sql.finish(conn, self._insert_delivery, looked, worker, now)

    # --- per-bot pacing, shared by every worker ----------------------------------------------

    def reserve(self, bot: str, interval: float, now: float,
                horizon: float) -> tuple[float, bool]:
        with self._write() as conn:
            row = self._bot(conn, bot)
            slot: float = max(now, row.next_at, row.paused_until)
            if slot - now > horizon:
                return slot, False
            conn.execute(bots.update().where(bots.c.bot == bot).values(next_at=slot + interval))
        return slot, True

    def pause(self, bot: str, until: float) -> None:
        with self._write() as conn:
            if until > self._bot(conn, bot).paused_until:
                conn.execute(bots.update().where(bots.c.bot == bot).values(paused_until=until))

    def paused_until(self, bot: str) -> float:
        with self._read() as conn:
            until = conn.execute(sa.select(bots.c.paused_until)
                                 .where(bots.c.bot == bot)).scalar_one_or_none()
        return float(until or 0.0)

    def pauses(self, now: float) -> dict[str, float]:
        with self._read() as conn:
            return {bot: until for bot, until in conn.execute(
                sa.select(bots.c.bot, bots.c.paused_until).where(bots.c.paused_until > now))}

    def _bot(self, conn: sa.Connection, bot: str) -> Any:
        conn.execute(self.insert(bots).values(bot=bot, next_at=0.0, paused_until=0.0)
                     .on_conflict_do_nothing())
        return conn.execute(sa.select(bots).where(bots.c.bot == bot).with_for_update()).one()

    # --- the history (history.py holds the SQL) ----------------------------------------------

    def event(self, event_id: int) -> dict[str, Any] | None:
        with self._read() as conn:
            return history.event(conn, event_id)

    def delivery(self, delivery_id: int) -> dict[str, Any] | None:
        with self._read() as conn:
            return history.delivery(conn, delivery_id)

    def events(self, *, status: str | None = None, mapping: str | None = None,
               since: float | None = None, phone: str | None = None,
               before: int | None = None, limit: int = 50, phones: tuple[str, ...] = (),
               text: str | None = None, now: float | None = None) -> list[dict[str, Any]]:
        query = history.events_query(status=status, mapping=mapping, since=since, phone=phone,
                                     before=before, limit=limit, phones=phones, text=text,
                                     dialect=self.engine.dialect.name, now=now)
        with self._read() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def failures(self, limit: int = 500) -> list[dict[str, Any]]:
        with self._read() as conn:
            return history.failures(conn, limit)

    def chart(self, chart: str, start: float, width: float,
              buckets: int) -> list[tuple[int, str, float]]:
        with self._read() as conn:
            return charts.chart(conn, chart, start, width, buckets)

    def queue_stats(self, now: float) -> tuple[int, float, int]:
        with self._read() as conn:
            return history.queue_stats(conn, now)

    def schedule_stats(self, now: float) -> tuple[int, int]:
        with self._read() as conn:
            return history.schedule_stats(conn, now)

    def mapping_stats(self, names: list[str], since: float) -> dict[str, dict[str, Any]]:
        with self._read() as conn:
            return mapping_stats.mapping_stats(conn, names, since)

    def replayable(self, *, dead: bool, failed: bool, mapping: str | None,
                   since: float | None) -> list[int]:
        with self._read() as conn:
            return history.replayable(conn, dead=dead, failed=failed, mapping=mapping,
                                      since=since)

    def replay(self, event_id: int, result: Result, now: float) -> dict[str, int]:
        with self._write() as conn:
            counts = history.replay(conn, self._insert_delivery, event_id, result, now)
            if counts["queued"]:
                self._wake(conn)
            return counts

    def purge(self, before: float, *, include_failed: bool = False, dry_run: bool = False,
              batch: int = 1000) -> int:
        where = history.purgeable(before, include_failed)
        if dry_run:
            with self._read() as conn:
                count: int = conn.execute(sa.select(sa.func.count()).select_from(events)
                                          .where(*where)).scalar_one()
                return count
        self.prune_refusals(before)
        total, size = 0, min(batch, PURGE_FIRST)
        while True:  # each batch its own short transaction, sized to about PURGE_SLICE
            started = time.perf_counter()
            with self._write() as conn:
                done = history.purge_batch(conn, where, size)
            if not done:
                return total
            total += done
            took = time.perf_counter() - started
            size = max(1, min(batch, int(size * PURGE_SLICE / max(took, 1e-6))))

    def prune_refusals(self, before: float) -> int:
        with self._write() as conn:
            gone: int = conn.execute(refusals.delete().where(refusals.c.last_at < before)).rowcount
            return gone

    def prune_cancels(self, now: float) -> int:
        with self._write() as conn:
            return cancels_sql.prune(conn, now)

    def send_now(self, delivery_id: int, now: float) -> bool:
        with self._write() as conn:
            sent = history.send_now(conn, delivery_id, now)
            if sent:
                self._wake(conn)
            return sent

    def cancel_delivery(self, delivery_id: int, now: float) -> bool:
        with self._write() as conn:
            return cancels_sql.cancel_one(conn, delivery_id, now)

    # --- the console's rows (sessions.py holds the SQL) --------------------------------------

    def session_key(self) -> str:
        with self._write() as conn:
            return sessions.session_key(conn, self.insert)

    def open_session(self, session_id: str, now: float, lifetime: float) -> None:
        with self._write() as conn:
            sessions.open_session(conn, session_id, now, lifetime)

    def session_alive(self, session_id: str, now: float) -> bool:
        with self._read() as conn:
            return sessions.session_alive(conn, session_id, now)

    def end_session(self, session_id: str) -> None:
        with self._write() as conn:
            sessions.end_session(conn, session_id)

    # --- alerts (alerts.py holds the SQL) ----------------------------------------------------

    def alert_facts(self, now: float, window: float, dead_since: float) -> dict[str, Any]:
        with self._read() as conn:
            return alerts.facts(conn, now, window, dead_since)

    def alert_states(self) -> dict[str, dict[str, Any]]:
        with self._read() as conn:
            return alerts.states(conn)

    def alert_transition(self, key: str, version: int | None, state: dict[str, Any],
                         messages: list[dict[str, Any]], now: float) -> bool:
        with self._write() as conn:
            return alerts.transition(conn, self.insert, key, version, state, messages, now)

    def alert_claim(self, worker: str, now: float, lease: float,
                    limit: int) -> list[dict[str, Any]]:
        with self._write() as conn:
            return alerts.claim(conn, worker, now, lease, limit)

    def alert_finish(self, message_id: int, worker: str, now: float, *, error: str | None,
                     next_at: float | None) -> bool:
        with self._write() as conn:
            return alerts.finish(conn, message_id, worker, now, error, next_at)

    # --- capture windows and samples (capture.py holds the SQL) ------------------------------

    def open_window(self, name: str, now: float, until: float) -> dict[str, Any]:
        with self._write() as conn:
            return capture.open_window(conn, name, now, until)

    def close_window(self, name: str, now: float) -> bool:
        with self._write() as conn:
            return capture.close_window(conn, name, now)

    def open_windows(self, now: float) -> list[dict[str, Any]]:
        with self._read() as conn:
            return capture.open_windows(conn, now)

    def add_sample(self, window_id: int, sample: dict[str, Any], cap: int,
                   now: float) -> int | None:
        with self._write() as conn:
            return capture.add_sample(conn, window_id, sample, cap, now)

    def samples(self, name: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        with self._read() as conn:
            return capture.samples(conn, name, limit)

    def sample(self, sample_id: int) -> dict[str, Any] | None:
        with self._read() as conn:
            return capture.sample(conn, sample_id)
