"""The delivery worker's loop: claim due deliveries, start their calls, record every outcome,
and on stop let the calls in flight finish or give them back.

Many calls are in flight at once (RELAY_CONCURRENCY) on one asyncio loop. Around the loop:
pacing.py says when calls may start, policy.py what an outcome leaves a delivery with,
recorder.py writes outcomes in batches, upkeep.py indexes for search, checkpoints and purges;
every store call goes through the one thread of store_thread.py; on PostgreSQL an idle worker
is woken by the store's waiter (relay/store/wake.py) as new work is accepted, rather than
finding it at its next poll; relay/lookup/ fetches
what mappings with `lookup:` need before they map, on the same loop. Alerts
(relay/alerts/alerter.py), when a channel is configured, run beside the loop on a thread of
their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from relay.alerts.alerter import Alerter
from relay.config import Settings
from relay.delivery import metrics
from relay.delivery.engati import Answer, EngatiClient, unconfigured
from relay.delivery.pacing import RAMP_STEP, Pacer, Ramp
from relay.delivery.policy import RetryPolicy
from relay.delivery.recorder import Recorder
from relay.delivery.request import build_request
from relay.delivery.store_thread import StoreThread
from relay.delivery.upkeep import Upkeep
from relay.errors import EngatiError, StoreUnavailable
from relay.lookup.runner import Lookups
from relay.mapping import Delivery, Engati
from relay.mapping.schedule import quiet_end
from relay.model import Attempt, Claimed
from relay.sources.registry import Registry
from relay.store import Store

log = logging.getLogger("relay.worker")
MIN_SLEEP = 0.005  # seconds: an idle worker never spins, whatever the clock says is due


class Worker:
    """`fallback` is the Engati target of deliveries whose mapping was removed since their
    event arrived (the caller's ENGATI_* settings; by default none: they wait, unconfigured).
    `clock` (epoch seconds) and `sleep` pace and date everything the store sees; `monotonic`
    times the ramp."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        registry: Registry,
        engati: EngatiClient,
        *,
        fallback: Engati | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        name: str | None = None,
    ):
        self.settings = settings
        self.registry = registry
        self.engati = engati
        self.fallback = Engati(None, None, None) if fallback is None else fallback
        self.clock = clock
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.db = StoreThread(store)
        self.waiter = store.waiter()  # None: the backend announces nothing, we only poll
        # Set when an idle worker should look again: a call ended, a lookup planned a
        # delivery, work was announced, or stop.
        self._woken = asyncio.Event()
        self.policy = RetryPolicy.of(settings, rng)
        self.ramp = Ramp(settings.concurrency, monotonic)
        self.pacer = Pacer(self.db, lease=settings.lease, retry_cap=settings.retry_cap,
                           clock=clock, sleep=sleep)
        self.recorder = Recorder(self.db, self.name, clock=clock, sleep=sleep)
        self.upkeep = Upkeep(self.db, settings, clock=clock, rng=rng)
        self.alerter = Alerter.of(store, settings, registry, clock=clock, name=self.name)
        self.lookups = Lookups(self.db, registry, self.policy, worker=self.name,
                               lease=settings.lease, poll_interval=settings.poll_interval,
                               clock=clock, on_planned=self._woken.set)
        self._in_flight: dict[int, asyncio.Task[None]] = {}  # deliveries not yet recorded
        self._calling: set[int] = set()  # deliveries holding one of the concurrency slots
        self._claimed_at = float("-inf")
        self._drained = False  # the last claim found fewer deliveries due than it could take

    async def run(self, stop: asyncio.Event, grace: float = 10.0) -> None:
        """Deliver until `stop` is set; then let calls in flight finish within `grace`."""
        async with self.engati:
            await self._run(stop, grace)

    async def run_once(self) -> int:
        """Claim what is due and deliver it all; the number of deliveries tried (for tests)."""
        async with self.engati:
            claimed = await self._claim(self.settings.concurrency)
            await asyncio.gather(*(self._deliver(d) for d in claimed))
        return len(claimed)

    async def _run(self, stop: asyncio.Event, grace: float) -> None:
        log.info("worker %s started: concurrency %d", self.name, self.settings.concurrency)
        chores: list[asyncio.Future[Any]] = [
            asyncio.create_task(self.upkeep.retain(stop)),
            asyncio.create_task(self.upkeep.every_second(stop)),
            asyncio.create_task(self.lookups.run(stop))]
        if self.alerter is not None:
            chores.append(asyncio.create_task(self.alerter.run(stop)))
        # Stopping wakes an idle worker as a call ending does: one task for the whole run,
        # not one more per wait (an idle wait per webhook at low rates, issue 17).
        stopped: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        stopped.add_done_callback(self._wake)
        chores.append(stopped)
        while not stop.is_set():
            slots = self.ramp.slots(busy=bool(self._calling))
            asked = self._claimed_at
            claimed = await self._claim(slots)
            if not claimed:
                timeout, due = self.settings.poll_interval, False
                if self._claimed_at != asked:  # the claim ran and came back empty
                    if not self._calling:  # idle: a call in flight would wake us as it ends
                        timeout = await self._until_due(timeout)
                        due = timeout < self.settings.poll_interval  # a scheduled one
                else:  # it was skipped: asked again once the poll interval is over
                    timeout = max(MIN_SLEEP, min(timeout, self._claimed_at + timeout
                                                 - self.clock()))
                # The ramp's next step opens sooner: worth waking for only while more is
                # due than its slots took. After an empty claim it would poll 40 times a
                # second while idle (the ramp starts over after every quiet second).
                if slots < self.settings.concurrency and not self._drained:
                    timeout = min(timeout, RAMP_STEP)
                if await self._idle(stop, timeout) or due:
                    # Work was accepted (or came due) since that claim found nothing more:
                    # claim it now rather than after the poll interval, calls in flight or not.
                    self._drained = False
                continue
            for delivery in claimed:
                self._calling.add(delivery.id)
                task = asyncio.create_task(self._deliver(delivery))
                self._in_flight[delivery.id] = task
                task.add_done_callback(functools.partial(self._finished, delivery.id))
        await self._drain(grace)
        await self.recorder.close()
        if self.waiter is not None:
            await self.waiter.close()
        for chore in chores:
            chore.cancel()
        await asyncio.gather(*chores, return_exceptions=True)
        log.info("worker %s stopped", self.name)

    async def _until_due(self, longest: float) -> float:
        """Seconds an idle worker sleeps, at most `longest` (new work is found by claiming
        again): until the earliest scheduled delivery is due, if that comes sooner."""
        now = self.clock()
        try:
            due = await self.db.call(self.db.store.next_due, now)
        except StoreUnavailable:
            return longest
        return longest if due is None else min(longest, max(MIN_SLEEP, due - now))

    async def _idle(self, stop: asyncio.Event, timeout: float) -> bool:
        """Sleep until `timeout` passes, a call finishes, new work is announced, or we are
        stopped; whether new work was announced (the store's waiter)."""
        self._woken.clear()
        if stop.is_set():
            return False
        announced = None
        if self.waiter is not None:
            announced = asyncio.ensure_future(self.waiter.wait(timeout))
            announced.add_done_callback(self._wake)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._woken.wait()
        if announced is None:
            return False
        if not announced.done():  # an announcement not yet heard stays for the next wait
            announced.remove_done_callback(self._wake)  # or its end would wake the next
            announced.cancel()
            return False
        return not announced.cancelled() and announced.result()

    async def _claim(self, slots: int) -> list[Claimed]:
        """Lease what is due, as many as there are free slots of `slots` (the calls that may
        be in flight now: the ramp's, or the concurrency for `run_once`). Every claim is a
        write transaction, and the web processes wait for the write lock while the worker
        holds it: under load, claim a ramp step of slots at a time rather than one per call
        that ends; and once the queue came back short (nothing more was due), wait for the
        poll interval before asking again."""
        free = slots - len(self._calling)
        overdue = self.clock() - self._claimed_at >= self.settings.poll_interval
        waiting = self._drained or free < self.ramp.step
        # A worker that hears of new work (LISTEN) need not ask again as each call ends:
        # at a few webhooks a second that was an empty claim and a next_due per webhook.
        heard = self.waiter is not None and self.waiter.listening
        if free <= 0 or (waiting and (self._calling or heard) and not overdue):
            return []
        self._claimed_at = self.clock()
        try:
            claimed = await self.db.call(self.db.store.claim, self.name, free, self.clock(),
                                         self.settings.lease)
        except StoreUnavailable as exc:
            log.warning("cannot claim deliveries: %s", exc)
            return []
        self._drained = len(claimed) < free
        return claimed

    def _wake(self, _done: asyncio.Future[Any]) -> None:
        self._woken.set()

    def _finished(self, delivery_id: int, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(delivery_id, None)
        self._free(delivery_id)

    def _free(self, delivery_id: int) -> None:
        self._calling.discard(delivery_id)
        self._woken.set()

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
            await self.db.call(self.db.store.release, unfinished, self.name)
            log.info("released %d delivery(ies) for another worker", len(unfinished))

    async def _deliver(self, claimed: Claimed) -> None:
        target = self._target(claimed.mapping)
        try:
            later = await self.pacer.wait_turn(target)
            if later is not None:  # the bot's turn is too far off to hold the lease for
                later = self._after_quiet(claimed, later)
                await self.db.call(self.db.store.defer, claimed, self.name, later, self.clock())
                return
        except StoreUnavailable as exc:
            log.error("delivery %d not tried: %s", claimed.id, exc)
            return  # the lease runs out and the delivery is tried again
        started = self.clock()
        begun = time.perf_counter()
        came_to = await self._call(claimed, target)
        duration_ms = (time.perf_counter() - begun) * 1000
        self._free(claimed.id)  # the next call may start while this outcome is written
        if isinstance(came_to, EngatiError):
            await self.pacer.heed(target, came_to, started)
        now = self.clock()
        attempt = self.policy.attempt(claimed, came_to, started, duration_ms, now)
        if attempt.next_at is not None:  # a retry waits out the recipient's quiet hours too
            attempt = replace(attempt, next_at=self._after_quiet(claimed, attempt.next_at))
        metrics.ATTEMPTS.labels(claimed.mapping, attempt.outcome).inc()
        if attempt.http_status is not None:
            metrics.LATENCY.observe(duration_ms / 1000)
        try:
            kept = await self.recorder.record(claimed, attempt)
        except Exception as exc:
            # The lease runs out and the delivery is tried again: at-least-once.
            log.error("attempt delivery=%d not recorded: %s", claimed.id, exc)
            return
        _log_attempt(claimed, attempt, now)
        if not kept:
            log.warning("delivery %d: the lease was lost before the outcome was recorded",
                        claimed.id)

    async def _call(self, claimed: Claimed, target: Engati) -> Answer | EngatiError:
        """One call to Engati: its answer, or why it failed (nothing is sent when the
        target's settings are missing)."""
        if missing := target.missing():
            return unconfigured(missing)
        request = build_request(target, Delivery(claimed.flow_key, claimed.channel,
                                                 claimed.phone, claimed.attributes))
        try:
            return await self.engati.send(request)
        except EngatiError as exc:
            return exc

    def _after_quiet(self, claimed: Claimed, due: float) -> float:
        """`due`, or the end of the quiet hours of the delivery's mapping it falls in."""
        endpoint = self.registry.get(claimed.mapping)
        quiet = endpoint.mapping.quiet_hours if endpoint else None
        later = None if quiet is None else quiet_end(quiet, due, claimed.phone)
        return due if later is None else later[0]

    def _target(self, mapping_name: str) -> Engati:
        endpoint = self.registry.get(mapping_name)
        # A mapping removed since its event arrived: the fallback bot still gets it.
        return endpoint.mapping.engati if endpoint else self.fallback


def _log_attempt(claimed: Claimed, attempt: Attempt, now: float) -> None:
    """One line per attempt: ids, outcome and timing, never the payload."""
    log.info(
        "attempt delivery=%d event=%d mapping=%s try=%d outcome=%s http=%s code=%s ms=%.0f%s%s",
        claimed.id, claimed.event_id, claimed.mapping, claimed.attempts + 1, attempt.outcome,
        "-" if attempt.http_status is None else attempt.http_status,
        "-" if attempt.engati_code is None else attempt.engati_code, attempt.duration_ms,
        f" retry_in={attempt.next_at - now:.1f}s" if attempt.next_at else "",
        f" error={attempt.error!r}" if attempt.error else "")
