"""The delivery worker: claim due deliveries, call Engati, record every attempt.

Many calls are in flight at once (RELAY_CONCURRENCY) on one asyncio loop; the database is
reached from one thread of its own, so that a slow commit never stalls the calls in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from relay.config import Settings, parse_duration
from relay.delivery.engati import EngatiClient
from relay.delivery.request import build_request
from relay.errors import EngatiError, StoreUnavailable
from relay.mapping import Delivery, Engati
from relay.mapping.load import engati_settings
from relay.model import Attempt, Claimed
from relay.sources.registry import Registry
from relay.store import Store
from relay.web import metrics

REFUSALS_KEPT = 7 * 86400  # seconds refusal counts are kept (the failures inbox shows them)
log = logging.getLogger("relay.delivery.worker")
T = TypeVar("T")
LATE = 0.02  # seconds a paced call may start after its slot
RAMP_STEP = 0.025  # seconds between the steps in which a worker opens its slots (_slots)
QUIET = 1.0  # seconds without a call in flight after which a worker ramps up again


def backoff(attempt: int, settings: Settings, retry_after: float | None = None,
            rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, ...).

    Exponential with full jitter, so that many deliveries failing together do not retry
    together; never sooner than Engati's Retry-After, and never later than the cap.
    """
    ceiling = min(settings.retry_cap, settings.retry_base * 2 ** (attempt - 1))
    delay = rng() * ceiling
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.retry_cap))
    return delay


class Worker:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        registry: Registry,
        engati: EngatiClient,
        *,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        name: str | None = None,
    ):
        self.store = store
        self.settings = settings
        self.registry = registry
        self.engati = engati
        self.clock = clock
        self.rng = rng
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._in_flight: dict[int, asyncio.Task[None]] = {}  # deliveries not yet recorded
        self._calling: set[int] = set()  # deliveries holding one of the concurrency slots
        self._freed = asyncio.Event()
        self.retention_every = 3600.0  # seconds between purges when RELAY_RETENTION is set
        self._pauses: dict[str, float] = {}  # bot -> end of a pause Engati asked for
        self._recorder: asyncio.Task[None] | None = None  # with its queue, made per loop
        self._recorder_loop: asyncio.AbstractEventLoop | None = None
        self._pauses_read = float("-inf")
        self._claimed_at = float("-inf")
        self._busy_at = float("-inf")  # the last time a call was seen in flight
        self._ramp_start = 0.0
        self._drained = False  # the last claim found fewer deliveries due than it could take
        self._step = max(1, settings.concurrency // 8)  # slots claimed, or opened, at a time
        self._checkpointed_at = float("-inf")
        # One thread for the store: writers in one process would otherwise contend for
        # SQLite's lock, and its busy handler makes the loser sleep for milliseconds.
        self._db = ThreadPoolExecutor(1, thread_name_prefix="relay-store")

    async def _db_call(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, function, *args)

    async def run(self, stop: asyncio.Event, grace: float = 10.0) -> None:
        """Deliver until `stop` is set; then let calls in flight finish within `grace`."""
        async with self.engati:
            await self._run(stop, grace)

    async def _run(self, stop: asyncio.Event, grace: float) -> None:
        log.info("worker %s started: concurrency %d", self.name, self.settings.concurrency)
        retention = asyncio.create_task(self._retain(stop))
        while not stop.is_set():
            await self._checkpoint()
            claimed = await self._claim(self._slots())
            if not claimed:
                self._freed.clear()
                # Sleep until the poll interval passes (or the next step of a ramp), a call
                # finishes, or we are stopped.
                timeout = self.settings.poll_interval
                if self._slots() < self.settings.concurrency:
                    timeout = min(timeout, RAMP_STEP)
                waiters = [asyncio.ensure_future(stop.wait()),
                           asyncio.ensure_future(self._freed.wait())]
                await asyncio.wait(waiters, timeout=timeout,
                                   return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
                continue
            for delivery in claimed:
                self._calling.add(delivery.id)
                task = asyncio.create_task(self._deliver(delivery))
                self._in_flight[delivery.id] = task
                task.add_done_callback(lambda _t, i=delivery.id: (self._in_flight.pop(i, None),
                                                                   self._free(i)))
        await self._drain(grace)
        if self._recorder is not None and self._recorder_loop is asyncio.get_running_loop():
            self._recorder.cancel()  # idle: every outcome was awaited by its delivery
            await asyncio.gather(self._recorder, return_exceptions=True)
        self._recorder = None
        retention.cancel()
        await asyncio.gather(retention, return_exceptions=True)
        log.info("worker %s stopped", self.name)

    async def _retain(self, stop: asyncio.Event) -> None:
        """Once an hour: purge finished events (failed ones too) older than RELAY_RETENTION
        when it is set, and refusal counts older than REFUSALS_KEPT in any case, so that
        forged traffic never grows the database for good."""
        keep = (parse_duration(self.settings.retention, "RELAY_RETENTION")
                if self.settings.retention else None)
        # The first purge a little after start, jittered so that workers do not collide.
        delay = self.retention_every / 60 * (1 + self.rng())
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            if stop.is_set():
                return
            try:
                if keep is not None:
                    removed = await asyncio.to_thread(self.store.purge, self.clock() - keep,
                                                      include_failed=True)
                    log.info("retention: purged %d event(s) older than %s", removed,
                             self.settings.retention)
                await asyncio.to_thread(self.store.prune_refusals,
                                        self.clock() - REFUSALS_KEPT)
            except StoreUnavailable as exc:
                log.warning("retention purge failed: %s", exc)
            delay = self.retention_every

    async def run_once(self) -> int:
        """Claim what is due and deliver it all; the number of deliveries tried (for tests)."""
        async with self.engati:
            claimed = await self._claim(self.settings.concurrency)
            await asyncio.gather(*(self._deliver(d) for d in claimed))
        return len(claimed)

    async def _checkpoint(self) -> None:
        """Once a second, SQLite's log goes into the database file here, not in a request."""
        if self.clock() - self._checkpointed_at < 1.0:
            return
        self._checkpointed_at = self.clock()
        try:
            await self._db_call(self.store.checkpoint)
        except StoreUnavailable as exc:
            log.warning("checkpoint failed: %s", exc)

    async def _claim(self, slots: int) -> list[Claimed]:
        """Lease what is due, as many as there are free slots of `slots` (the calls that may
        be in flight now: `_slots`, or the concurrency for `run_once`). Every claim is a write
        transaction, and the web processes wait for the write lock while the worker holds
        it: under load, claim an eighth of the slots at a time rather than one per call that
        ends; and once the queue came back short (nothing more was due), wait for the poll
        interval before asking again."""
        free = slots - len(self._calling)
        overdue = self.clock() - self._claimed_at >= self.settings.poll_interval
        waiting = self._drained or free < self._step
        if free <= 0 or (waiting and self._calling and not overdue):
            return []
        self._claimed_at = self.clock()
        try:
            claimed = await self._db_call(self.store.claim, self.name, free, self.clock(),
                                          self.settings.lease)
        except StoreUnavailable as exc:
            log.warning("cannot claim deliveries: %s", exc)
            return []
        self._drained = len(claimed) < free
        return claimed

    def _slots(self) -> int:
        """How many calls may be in flight now. A worker that starts, or picks up after a
        quiet spell, opens its slots an eighth at a time, one step per RAMP_STEP, rather than
        all at once: calls started together come back together, and a wave of hundreds of
        answers handled back to back holds each of them up by the time the loop needs for
        the whole wave, cycle after cycle (256 calls at 200 ms: 10-15% fewer deliveries a
        second). Spread over the first cycles, they stay spread. Engati, too, sees a
        worker's calls grow over a fraction of a second, not a wall of new connections."""
        now = time.monotonic()
        if self._calling:
            self._busy_at = now
        elif now - self._busy_at >= QUIET:
            self._ramp_start = now
        return min(self.settings.concurrency,
                   self._step * (1 + int((now - self._ramp_start) / RAMP_STEP)))

    def _free(self, delivery_id: int) -> None:
        self._calling.discard(delivery_id)
        self._freed.set()

    async def _drain(self, grace: float) -> None:
        if not self._in_flight:
            return
        tasks = dict(self._in_flight)
        log.info("waiting up to %.0fs for %d call(s) in flight", grace, len(tasks))
        _, pending = await asyncio.wait(tasks.values(), timeout=grace)
        unfinished = [i for i, task in tasks.items() if task in pending]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if unfinished:
            await self._db_call(self.store.release, unfinished, self.name)
            log.info("released %d delivery(ies) for another worker", len(unfinished))

    async def _deliver(self, claimed: Claimed) -> None:
        target = self._target(claimed.mapping)
        try:
            later = await self._pace(target)
            if later is not None:  # the bot's turn is too far off to hold the lease for
                await self._db_call(self.store.defer, claimed, self.name, later, self.clock())
                return
        except StoreUnavailable as exc:
            log.error("delivery %d not tried: %s", claimed.id, exc)
            return  # the lease runs out and the delivery is tried again
        started = self.clock()
        begun = time.perf_counter()
        outcome, status, code, error, retry_after = await self._call(claimed, target)
        self._free(claimed.id)  # the next call may start while this outcome is written
        if status == 429 and retry_after:
            await self._pause(target.bot, started + min(retry_after, self.settings.retry_cap))
        duration_ms = (time.perf_counter() - begun) * 1000
        now = self.clock()
        number = claimed.attempts + 1
        next_at = None
        if outcome == "retry":
            if number >= self.settings.max_attempts:
                outcome, error = "dead", f"{error}; gave up after {number} attempts"
            elif now - claimed.created_at >= self.settings.max_age:
                outcome, error = "dead", f"{error}; gave up after {self.settings.max_age:.0f}s"
            else:
                next_at = now + backoff(number, self.settings, retry_after, self.rng)
        attempt = Attempt(claimed.id, started, duration_ms, outcome, status, code, error,
                          next_at=next_at)
        metrics.ATTEMPTS.labels(claimed.mapping, outcome).inc()
        if status is not None:
            metrics.LATENCY.observe(duration_ms / 1000)
        try:
            kept = await self._record(claimed, attempt)
        except Exception as exc:
            # The lease runs out and the delivery is tried again: at-least-once.
            log.error("attempt delivery=%d not recorded: %s", claimed.id, exc)
            return
        log.info(
            "attempt delivery=%d event=%d mapping=%s try=%d outcome=%s http=%s code=%s ms=%.0f%s%s",
            claimed.id, claimed.event_id, claimed.mapping, number, outcome,
            "-" if status is None else status, "-" if code is None else code, duration_ms,
            f" retry_in={next_at - now:.1f}s" if next_at else "",
            f" error={error!r}" if error else "")
        if not kept:
            log.warning("delivery %d: the lease was lost before the outcome was recorded",
                        claimed.id)

    async def _record(self, claimed: Claimed, attempt: Attempt) -> bool:
        """Hand an outcome to the recorder, which writes whatever has piled up in one
        transaction: with hundreds of calls in flight, one commit per call would queue them
        all behind the database lock."""
        loop = asyncio.get_running_loop()
        if self._recorder is None or self._recorder_loop is not loop:
            self._outcomes: asyncio.Queue = asyncio.Queue()
            self._recorder_loop = loop
            self._recorder = asyncio.create_task(self._record_loop(self._outcomes))
        done: asyncio.Future[bool] = loop.create_future()
        self._outcomes.put_nowait((claimed, attempt, done))
        return await done

    async def _record_loop(self, outcomes: asyncio.Queue) -> None:
        while True:
            batch = [await outcomes.get()]
            while not outcomes.empty() and len(batch) < 500:
                batch.append(outcomes.get_nowait())
            try:
                await self._record_batch(batch)
            except Exception as exc:  # a bug here must not stop every later recording
                log.exception("recording %d outcome(s) failed", len(batch))
                for *_, done in batch:
                    if not done.done():
                        done.set_exception(exc)

    async def _record_batch(self, batch: list) -> None:
        """Write a batch of outcomes; while the database is unavailable, try again for as
        long as the leases last: an outcome recorded late beats a call made twice."""
        delay = 0.05
        while batch:
            try:
                kept = await self._db_call(
                    self.store.record_many, [item[1] for item in batch], self.name,
                    self.clock())
            except StoreUnavailable as exc:
                give_up = self.clock() + delay
                for claimed, *_, done in batch:
                    if claimed.lease_until <= give_up:
                        done.set_exception(exc)
                batch = [item for item in batch if not item[-1].done()]
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            for (*_, done), result in zip(batch, kept, strict=True):
                done.set_result(result)
            return

    async def _pace(self, target: Engati) -> float | None:
        """Wait for the bot's turn (its rate limit, a pause Engati asked for), or return when
        to come back if that is further off than a quarter of the lease."""
        if target.rate_limit:
            return await self._take_slot(target)
        now = self.clock()
        if now - self._pauses_read >= 1.0:  # other workers' pauses, read once a second
            self._pauses_read = now  # by this call alone: the others use what is known
            self._pauses = await self._db_call(self.store.pauses, now)
        until = self._pauses.get(target.bot, 0.0)
        if until - now > self.settings.lease / 4:
            return until
        if until > now:
            await asyncio.sleep(until - now)
        return None

    async def _take_slot(self, target: Engati) -> float | None:
        """Reserve the bot's next slot and start in it. A call that wakes up late takes a new
        slot rather than bunch up with the next one: calls start at least `interval` apart
        (less the lateness allowed), whichever worker makes them."""
        interval = 1.1 / target.rate_limit  # 10% slack for network jitter on the way
        for _ in range(5):
            now = self.clock()
            slot, reserved = await self._db_call(self.store.reserve, target.bot, interval,
                                                 now, self.settings.lease / 4)
            if not reserved:
                return slot
            if slot <= now:
                return None
            await asyncio.sleep(slot - now)
            # Another worker may have met a 429 while this call waited for its slot.
            until = await self._db_call(self.store.paused_until, target.bot)
            if until > self.clock():
                return until
            if self.clock() - slot <= LATE:
                return None
        return self.clock()  # this worker is too busy to start on time: come back later

    async def _pause(self, bot: str, until: float) -> None:
        self._pauses[bot] = max(until, self._pauses.get(bot, 0.0))
        try:
            await self._db_call(self.store.pause, bot, until)
        except StoreUnavailable as exc:
            log.warning("pause for bot %s not shared with other workers: %s", bot, exc)

    async def _call(
        self, claimed: Claimed, target: Engati
    ) -> tuple[str, int | None, int | None, str | None, float | None]:
        """One call: (outcome, HTTP status, Engati code, error, Retry-After)."""
        if missing := target.missing():
            unset = ", ".join(f"ENGATI_{k.upper()}" for k in missing)
            return "retry", None, None, f"engati settings not set: {unset}", None
        request = build_request(target, Delivery(claimed.flow_key, claimed.channel,
                                                 claimed.phone, claimed.attributes))
        try:
            answer = await self.engati.send(request)
        except EngatiError as exc:
            outcome = "retry" if exc.retryable else "dead"
            return outcome, exc.status, exc.code, str(exc), exc.retry_after
        return "delivered", answer.http_status, answer.code, None, None

    def _target(self, mapping_name: str) -> Engati:
        mapping = self.registry.get(mapping_name)
        # A mapping removed since the event arrived: the environment's bot still gets it.
        return mapping.mapping.engati if mapping else engati_settings({}, os.environ)
