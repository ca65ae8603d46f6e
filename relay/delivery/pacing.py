"""When calls may start: the worker's own ramp of concurrency slots, and each bot's pace
(its rate limit, and the pauses Engati asks for with 429 and Retry-After), which every worker
shares through the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from relay.delivery.store_thread import StoreThread
from relay.errors import EngatiError, StoreUnavailable
from relay.mapping import Engati

LATE = 0.02  # seconds a paced call may start after its slot
RAMP_STEP = 0.025  # seconds between the steps in which a worker opens its slots
QUIET = 1.0  # seconds without a call in flight after which a worker ramps up again
RATE_SLACK = 1.1  # calls to a bot are spaced 10% wider than its rate limit: network jitter
log = logging.getLogger("relay.worker")  # the worker's lines, under the name they always had


class Ramp:
    """How many calls may be in flight now. A worker that starts, or picks up after a quiet
    spell, opens its slots an eighth at a time, one `step` per RAMP_STEP, rather than all at
    once: calls started together come back together, and a wave of hundreds of answers
    handled back to back holds each of them up by the time the loop needs for the whole
    wave, cycle after cycle (256 calls at 200 ms: 10-15% fewer deliveries a second). Spread
    over the first cycles, they stay spread. Engati, too, sees a worker's calls grow over a
    fraction of a second, not a wall of new connections."""

    def __init__(self, concurrency: int, monotonic: Callable[[], float] = time.monotonic):
        self.concurrency = concurrency
        self.step = max(1, concurrency // 8)  # slots opened (and claimed) at a time
        self.monotonic = monotonic
        self._busy_at = float("-inf")  # the last time a call was seen in flight
        self._start = 0.0

    def slots(self, busy: bool) -> int:
        """The slots open now; `busy`: whether a call is in flight."""
        now = self.monotonic()
        if busy:
            self._busy_at = now
        elif now - self._busy_at >= QUIET:
            self._start = now
        return min(self.concurrency, self.step * (1 + int((now - self._start) / RAMP_STEP)))


class Pacer:
    """Holds each call until its bot's turn. The turn is reserved in the store, so that a
    bot's rate limit holds across workers; a pause read from the store once a second."""

    def __init__(self, db: StoreThread, *, lease: float, retry_cap: float,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.db = db
        self.horizon = lease / 4  # a turn further off than this: the lease is given back
        self.retry_cap = retry_cap
        self.clock = clock
        self.sleep = sleep
        self._pauses: dict[str, float] = {}  # bot -> end of a pause Engati asked for
        self._pauses_read = float("-inf")

    async def wait_turn(self, target: Engati) -> float | None:
        """Wait for the bot's turn; or return when to come back, if that is further off
        than the horizon."""
        if target.rate_limit:
            return await self._take_slot(target, target.rate_limit)
        now = self.clock()
        if now - self._pauses_read >= 1.0:  # other workers' pauses, read once a second
            self._pauses_read = now  # by this call alone: the others use what is known
            self._pauses = await self.db.call(self.db.store.pauses, now)
        until = self._pauses.get(target.bot, 0.0)
        if until - now > self.horizon:
            return until
        if until > now:
            await self.sleep(until - now)
        return None

    async def _take_slot(self, target: Engati, rate_limit: float) -> float | None:
        """Reserve the bot's next slot and start in it. A call that wakes up late takes a new
        slot rather than bunch up with the next one: calls start at least `interval` apart
        (less the lateness allowed), whichever worker makes them."""
        interval = RATE_SLACK / rate_limit
        for _ in range(5):
            now = self.clock()
            slot, reserved = await self.db.call(self.db.store.reserve, target.bot, interval,
                                                now, self.horizon)
            if not reserved:
                return slot
            if slot <= now:
                return None
            await self.sleep(slot - now)
            # Another worker may have met a 429 while this call waited for its slot.
            until = await self.db.call(self.db.store.paused_until, target.bot)
            if until > self.clock():
                return until
            if self.clock() - slot <= LATE:
                return None
        return self.clock()  # this worker is too busy to start on time: come back later

    async def heed(self, target: Engati, failure: EngatiError, started: float) -> None:
        """After a 429 with Retry-After, no call to the bot (by any worker) until then."""
        if failure.status != 429 or not failure.retry_after:
            return
        until = started + min(failure.retry_after, self.retry_cap)
        self._pauses[target.bot] = max(until, self._pauses.get(target.bot, 0.0))
        try:
            await self.db.call(self.db.store.pause, target.bot, until)
        except StoreUnavailable as exc:
            log.warning("pause for bot %s not shared with other workers: %s", target.bot, exc)
