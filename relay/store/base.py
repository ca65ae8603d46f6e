"""The store contract: what the web, the worker, the CLI and the console ask of the database.

Two backends keep it: `SqlStore` (sql.py, SQLAlchemy Core; PostgreSQL) and `SqliteStore`
(sqlite.py, the same but for its hot paths, which go through the driver). `open_store` picks
one by DATABASE_URL; tests/support/fake_store.py keeps it in memory for unit tests. One
suite, tests/unit/store/test_contract.py, holds all three to it.

A webhook is stored as an event with its planned deliveries, in one transaction, before the
sender is answered. Each delivery then goes through this state machine:

                       claim (lease to a worker until now + lease)
            +--------------------------------------------------------+
            |                                                        v
    accept --> PENDING (due at next_at)                      PENDING, leased
                 ^  ^  ^                                      |  |  |  |
                 |  |  +---- release (shutting down) ---------+  |  |  |
                 |  +------- defer (paced or paused bot: --------+  |  |
                 |           a later next_at, untried)              |  |
                 +---------- record_many: RETRY (attempts + 1, -----+  |
                             a later next_at)                          |
                                                                       |
                 record_many: DELIVERED -> DELIVERED (final)  <--------+
                 record_many: DEAD      -> DEAD --- replay ---> PENDING (attempts 0)

- A retry is no state of its own: the delivery stays pending with a later `next_at`.
- A lease that runs out (a crashed worker) makes the delivery claimable again: at least once,
  a crash may repeat the call that was in flight, never skip one. A worker that lost its
  lease records its attempt but cannot change the delivery, unless the attempt succeeded
  (`keeps`): a success always counts.
- Replay maps a stored event again; it queues its dead deliveries (and any new ones) and
  never one that was delivered (or cancelled).
- A pending delivery not in flight can be cancelled (a later webhook's `cancel:`, or an
  operator's `cancel_delivery`): CANCELLED is final, and never called. An operator's
  `send_now` makes it due at once instead. A pending delivery never tried and due later is
  shown as *scheduled* (SCHEDULED): a state of the listings, not a stored status.

Reads (event, delivery, events, failures, chart, queue_stats, schedule_stats, replayable, pauses,
paused_until, ping) take no
write lock: /readyz, /metrics and the console never wait behind webhook commits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol

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

# A pending delivery never tried and due later (its schedule or quiet hours put it off): a
# state an event's listing shows and filters on, not a status a delivery is stored with.
SCHEDULED = "scheduled"
# What `events(status=...)` filters on: an event's own status, or its deliveries' state. Plain
# text, not the enums' members: click's Choice would offer an enum's names (ACCEPTED, ...).
STATUSES: tuple[str, ...] = (*(status.value for status in (
    EventStatus.ACCEPTED, EventStatus.SKIPPED, EventStatus.FAILED,
    DeliveryStatus.PENDING, DeliveryStatus.DELIVERED, DeliveryStatus.DEAD)),
    SCHEDULED, DeliveryStatus.CANCELLED.value)


def keeps(current: tuple[str, str | None] | None, attempt: Attempt, worker: str) -> bool:
    """Whether an attempt may set its delivery's outcome, given the delivery's (status,
    leased_by): it is still pending, and still leased to this worker unless the attempt
    succeeded (a success always counts)."""
    if current is None or current[0] != DeliveryStatus.PENDING:
        return False
    return attempt.outcome == Outcome.DELIVERED or current[1] == worker


def keeps_each(current: dict[int, tuple[str, str | None]], outcomes: list[Attempt],
               worker: str) -> list[bool]:
    """`keeps` for a batch's outcomes in order, each judged on its delivery as the kept ones
    before it left it (`current` is updated): a delivery may come twice, when its lease ran
    out during a call and its worker claimed it again."""
    kept = []
    for attempt in outcomes:
        keep = keeps(current.get(attempt.delivery_id), attempt, worker)
        if keep:
            current[attempt.delivery_id] = (Outcome(attempt.outcome).status, None)
        kept.append(keep)
    return kept


class Waiter(Protocol):
    """How an idle worker hears of new work sooner than its next poll (`Store.waiter`)."""

    @property
    def listening(self) -> bool:
        """Whether new work is announced now (False while the waiter's connection is lost:
        the worker then finds it only by polling)."""

    async def wait(self, timeout: float) -> bool:
        """True once work was announced since the last wait that returned True (at once if
        it was already); False when `timeout` seconds passed without."""

    async def close(self) -> None:
        """Stop listening and close what the waiter holds."""


class Store(ABC):
    """The contract. Times are UNIX seconds, passed in by the caller (never read here)."""

    # --- inbound ---------------------------------------------------------------------------

    @abstractmethod
    def accept(self, received: Received) -> Receipt:
        """Store an event and its planned deliveries; return once they are committed.

        When every planned delivery's dedup key was accepted before, or a failed or skipped
        event's key was stored before under the same status, nothing is stored and the first
        event's id comes back as a duplicate."""

    def accept_many(self, received: list[Received]) -> list[Receipt | Exception]:
        """`accept` for each, in one transaction where the store can: each webhook's receipt,
        or the exception that kept it out (one webhook the database refuses does not fail
        the others)."""
        receipts: list[Receipt | Exception] = []
        for one in received:
            try:
                receipts.append(self.accept(one))
            except Exception as exc:
                receipts.append(exc)
        return receipts

    @abstractmethod
    def refuse(self, mapping: str, reason: str, now: float) -> bool:
        """Count a request refused for its signature (why, never what it carried); never a
        commit of its own per refusal. True for the first of its kind for the mapping this
        minute (the one worth a log line)."""

    @abstractmethod
    def flush(self, now: float) -> None:
        """Write the refusals counted so far now, rather than with the next batch."""

    # --- the worker ------------------------------------------------------------------------

    @abstractmethod
    def claim(self, worker: str, limit: int, now: float, lease: float) -> list[Claimed]:
        """Lease up to `limit` due deliveries to `worker` until `now + lease`, oldest first
        (returned in id order)."""

    @abstractmethod
    def record_many(self, outcomes: list[Attempt], worker: str, now: float) -> list[bool]:
        """Record attempts, all in one transaction, and apply each one's outcome to its
        delivery; each result is False where `keeps` says the outcome may not apply."""

    @abstractmethod
    def defer(self, claimed: Claimed, worker: str, next_at: float, now: float) -> None:
        """Give a delivery back untried, due again at `next_at` (its bot is paced or paused)."""

    @abstractmethod
    def release(self, ids: list[int], worker: str) -> None:
        """Give back leased deliveries untried (a worker shutting down)."""

    @abstractmethod
    def next_due(self, now: float) -> float | None:
        """When the earliest pending delivery that is not in flight is due (None: there is
        none): an idle worker sleeps until then, or until it looks for new work."""

    def waiter(self) -> Waiter | None:
        """A new waiter for one worker, on its event loop: woken when deliveries are made
        due now (accepted, replayed, sent now, given back by a worker that stops); None (the
        default: SQLite, the fake store) when the backend has none and workers only poll.
        Polling goes on beside it: a lease run out or a retry come due is announced by
        nobody."""
        return None

    @abstractmethod
    def claim_lookups(self, worker: str, limit: int, now: float,
                      lease: float) -> list[ClaimedLookup]:
        """Lease up to `limit` due lookups (relay/lookup/) to `worker`, with the stored
        request each was planned from, in id order."""

    @abstractmethod
    def finish_lookup(self, looked: Looked, worker: str, now: float) -> bool:
        """Record a lookup's attempt; when it was fetched, insert the delivery its answer
        maps to and bring the event's status up to date, in the same transaction. False,
        with nothing written, when `worker` no longer holds the lookup."""

    @abstractmethod
    def reserve(self, bot: str, interval: float, now: float,
                horizon: float) -> tuple[float, bool]:
        """The time the next call to `bot` may start, and whether it was reserved: a slot is
        reserved (the bot's next slot moves `interval` on) only when it starts within
        `horizon` seconds; later ones are only reported, so that waiting costs no slots."""

    @abstractmethod
    def pause(self, bot: str, until: float) -> None:
        """No call to `bot` before `until` (Engati answered 429 with Retry-After); a pause
        only ever grows."""

    @abstractmethod
    def paused_until(self, bot: str) -> float:
        """When a pause of `bot` ends (0 when it was never paused)."""

    @abstractmethod
    def pauses(self, now: float) -> dict[str, float]:
        """Bots paused beyond `now`, with the end of each pause."""

    @abstractmethod
    def checkpoint(self) -> None:
        """Make the worker's unsynced writes durable without waiting for anyone (SQLite's
        write-ahead log into the file); the worker calls it every second."""

    indexes_aside = False  # whether index_search runs on a connection of its own

    def index_search(self, limit: int) -> int:
        """Index up to `limit` events for search that were stored since the last call, and
        say how many (the table `events_search` of either backend, search.py); the worker
        calls it every second, so the webhooks' own transactions index nothing."""
        return 0

    def merge_search(self, pages: int) -> bool:
        """Merge the search index's pieces, writing about `pages` pages (SQLite's FTS5, which
        the worker asks after indexing, migration 0016); whether any merging was left to do."""
        return False

    # --- running the store -----------------------------------------------------------------

    @abstractmethod
    def upgrade(self) -> tuple[str | None, str | None]:
        """Bring the schema to the latest migration; the revisions before and after (None
        before: the database was empty)."""

    @abstractmethod
    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""

    @abstractmethod
    def dispose(self) -> None:
        """Close every connection."""

    # --- the history, for operators --------------------------------------------------------

    @abstractmethod
    def event(self, event_id: int) -> dict[str, Any] | None:
        """An event row with its deliveries (`deliveries`), each with its attempts
        (`attempt_log`)."""

    @abstractmethod
    def delivery(self, delivery_id: int) -> dict[str, Any] | None:
        """A deliveries row with its attempts (`attempt_log`), as `event` lists it."""

    @abstractmethod
    def events(self, *, status: str | None = None, mapping: str | None = None,
               since: float | None = None, phone: str | None = None,
               before: int | None = None, limit: int = 50, phones: tuple[str, ...] = (),
               text: str | None = None, now: float | None = None) -> list[dict[str, Any]]:
        """Recent events, newest first, with their deliveries counted by status (`total`,
        `pending`, `delivered`, `dead`, `cancelled`) and the latest delivery error
        (`last_error`). With `now`: how many pending deliveries are `scheduled` (never
        tried, due after `now`) and when the first of them is due (`scheduled_at`, None
        when none is); without it none is scheduled.

        Searches (search.py): `phones`, events with a delivery to one of these stored phones
        exactly; `phone`, digits within a delivery's phone; `text`, in the raw body,
        case-insensitively, at least search.MIN_TEXT characters (else RelayError).

        `status` is one of STATUSES: an event status (accepted, skipped, failed) or a
        delivery state an event has (pending: any pending, delivered: all delivered but for
        cancelled ones, at least one delivered, dead: any dead, cancelled: any cancelled,
        scheduled: any scheduled, which needs `now`). `before` is an event id: the page
        after it."""

    @abstractmethod
    def failures(self, limit: int = 500) -> list[dict[str, Any]]:
        """Recent failed mappings (`kind` failed), dead deliveries (dead, with their stored
        `failure` kind) and refused signatures (refused: a row per mapping, minute and kind,
        with its `count`), newest first (`at`); see failures.group_failures."""

    @abstractmethod
    def chart(self, chart: str, start: float, width: float,
              buckets: int) -> list[tuple[int, str, float]]:
        """One of the dashboard's series (charts.CHARTS), as (bucket, series, value) rows for
        `buckets` buckets of `width` seconds from `start`, oldest first; see charts.py."""

    @abstractmethod
    def queue_stats(self, now: float) -> tuple[int, float, int]:
        """(pending deliveries, how long the oldest pending one has waited since it was
        first due in seconds, dead deliveries); one scheduled for later has not waited."""

    @abstractmethod
    def schedule_stats(self, now: float) -> tuple[int, int]:
        """(scheduled deliveries: pending, never tried, due after `now`; cancelled
        deliveries, not yet purged): /metrics reads them at scrape time."""

    @abstractmethod
    def mapping_stats(self, names: list[str], since: float) -> dict[str, dict[str, Any]]:
        """For each mapping named: {last_at (its last event's time, or None), accepted,
        failed (its events since `since`), dead (its deliveries gone dead since then)}; one
        query for all of them (mapping_stats.py)."""

    @abstractmethod
    def replayable(self, *, dead: bool, failed: bool, mapping: str | None,
                   since: float | None) -> list[int]:
        """Ids of events with dead deliveries and/or events whose mapping failed."""

    @abstractmethod
    def replay(self, event_id: int, result: Result, now: float) -> dict[str, int]:
        """Apply a fresh mapping result to a stored event and queue what is not delivered
        (`queued`); a delivery that already succeeded is never queued again
        (`already_delivered`)."""

    @abstractmethod
    def purge(self, before: float, *, include_failed: bool = False, dry_run: bool = False,
              batch: int = 1000) -> int:
        """Delete finished events received before `before`, with their deliveries and
        attempts, and the refusal counts of that time; never an event with a pending
        delivery, and a failed one (awaiting a replay) only with `include_failed`. In short
        transactions of at most `batch` events, so that the queue and the webhooks are never
        stalled; `dry_run` only counts. How many events."""

    @abstractmethod
    def prune_refusals(self, before: float) -> int:
        """Delete refusal counts last seen before `before`; how many rows went."""

    @abstractmethod
    def prune_cancels(self, now: float) -> int:
        """Delete the cancellations kept no longer (cancel.keep ran out); how many."""

    # --- an operator's hand on one delivery ------------------------------------------------

    @abstractmethod
    def send_now(self, delivery_id: int, now: float) -> bool:
        """Make a pending delivery that is not in flight due at once, whatever its schedule
        or quiet hours said; False when it is not pending (or is in flight)."""

    @abstractmethod
    def cancel_delivery(self, delivery_id: int, now: float) -> bool:
        """Cancel a pending delivery that is not in flight (it is never called); False when
        it is not pending (or is in flight)."""

    # --- the console's rows ----------------------------------------------------------------

    @abstractmethod
    def session_key(self) -> str:
        """The deployment's random session signing key, made by whichever process asks first
        (every web process of a deployment signs cookies alike)."""

    @abstractmethod
    def open_session(self, session_id: str, now: float, lifetime: float) -> None:
        """Record a new logged-in console session; expired ones are deleted on the way."""

    @abstractmethod
    def session_alive(self, session_id: str, now: float) -> bool:
        """Whether a console session is open and unexpired."""

    @abstractmethod
    def end_session(self, session_id: str) -> None:
        """End a console session in every process (a logout)."""

    # --- alerts (relay/alerts/ says what the rows mean) --------------------------------------

    @abstractmethod
    def alert_facts(self, now: float, window: float, dead_since: float) -> dict[str, Any]:
        """What the alert rules judge: `dead`, deliveries dead since `dead_since` grouped
        per (mapping, failure) with their `count`, newest death `last_at` and its
        `last_error`; `attempts`, per mapping the attempts started in the last `window`
        seconds (`total`, `failed`: not delivered, `auth`: of FailureKind auth);
        `oldest_pending`, the age of the oldest pending delivery (None: none pending)."""

    @abstractmethod
    def alert_states(self) -> dict[str, dict[str, Any]]:
        """Every alert condition's row (`key`, `kind`, `status`, `version`, `since`,
        `sent_at`, `last_at`), by key."""

    @abstractmethod
    def alert_transition(self, key: str, version: int | None, state: dict[str, Any],
                         messages: list[dict[str, Any]], now: float) -> bool:
        """Set a condition's state (`kind`, `status`, `since`, `sent_at`, `last_at`) if it
        is still at `version` (None: it has no row yet), and queue `messages` ({channel,
        message}) in the same transaction. False, changing nothing, when another worker
        moved it first: each transition and its messages happen once."""

    @abstractmethod
    def alert_claim(self, worker: str, now: float, lease: float,
                    limit: int) -> list[dict[str, Any]]:
        """Lease up to `limit` due alert messages to `worker` until `now + lease` (two
        workers never hold the same one); finished ones kept long enough are deleted."""

    @abstractmethod
    def alert_finish(self, message_id: int, worker: str, now: float, *, error: str | None,
                     next_at: float | None) -> bool:
        """Record a try of a leased message: sent (`error` None), due again at `next_at`, or
        given up (an error, no `next_at`). False when `worker` no longer held it."""

    # --- capture windows and samples (relay/capture/) --------------------------------------

    @abstractmethod
    def open_window(self, name: str, now: float, until: float) -> dict[str, Any]:
        """Open a capture window for /hooks/<name> until `until` (closing one already open:
        its samples stay); the window row (id, name, opened_at, closes_at, taken)."""

    @abstractmethod
    def close_window(self, name: str, now: float) -> bool:
        """Close the open window of `name`; whether there was one."""

    @abstractmethod
    def open_windows(self, now: float) -> list[dict[str, Any]]:
        """The windows open at `now`, by name."""

    @abstractmethod
    def add_sample(self, window_id: int, sample: dict[str, Any], cap: int,
                   now: float) -> int | None:
        """Store a sample (method, headers, query, body, signature) in an open window that
        has fewer than `cap`; its id, or None (closed or full: nothing stored)."""

    @abstractmethod
    def samples(self, name: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Samples, newest first (of `name` only, when given), each with its `size` in
        bytes but not its body (`sample` has it)."""

    @abstractmethod
    def sample(self, sample_id: int) -> dict[str, Any] | None:
        """One sample with its body."""
