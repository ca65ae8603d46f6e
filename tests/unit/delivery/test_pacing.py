"""Pacing: the worker's ramp of concurrency slots, and each bot's turn (its rate limit, the
pauses Engati asks for), on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from relay.delivery.pacing import QUIET, RAMP_STEP, RATE_SLACK, Pacer, Ramp
from relay.delivery.store_thread import StoreThread
from relay.errors import EngatiError
from relay.mapping import Engati
from relay.model import FailureKind
from tests.unit.delivery.clock import FakeClock

BOT = Engati("1", "b", "k")
LIMITED = Engati("2", "c", "k", rate_limit=10.0)  # a call every 0.11 s


class TestRamp:
    def test_slots_open_a_step_at_a_time_from_a_standing_start(self):
        """An eighth of the concurrency at first, one more eighth per RAMP_STEP."""
        clock = FakeClock(100.0)
        ramp = Ramp(16, clock)
        opened = [ramp.slots(busy=False)]  # the worker starts: nothing in flight
        for step in range(1, 9):
            clock.now = 100.0 + (step + 0.5) * RAMP_STEP  # mid-step: no rounding at the edges
            opened.append(ramp.slots(busy=True))
        assert opened == [2, 4, 6, 8, 10, 12, 14, 16, 16]

    def test_a_quiet_spell_starts_the_ramp_again(self):
        """After QUIET seconds with no call in flight, the slots open from one step again;
        a shorter lull keeps them open."""
        clock = FakeClock(100.0)
        ramp = Ramp(16, clock)
        assert ramp.slots(busy=False) == 2
        clock.now += 10 * RAMP_STEP
        assert ramp.slots(busy=True) == 16
        clock.now += QUIET / 2
        assert ramp.slots(busy=False) == 16
        clock.now += QUIET
        assert ramp.slots(busy=False) == 2

    def test_small_concurrency_steps_by_one(self):
        """Fewer than eight slots still open one at a time."""
        assert (Ramp(3, FakeClock(0.0)).step, Ramp(3, FakeClock(0.0)).slots(busy=False)) == (1, 1)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def pacer(store, clock):
    return Pacer(StoreThread(store), lease=60, retry_cap=3600, clock=clock, sleep=clock.sleep)


def rate_limited(retry_after, status=429):
    return EngatiError(f"Engati answered HTTP {status}", failure=FailureKind.RATE_LIMITED,
                       status=status, retry_after=retry_after)


class TestRateLimit:
    def test_calls_to_a_bot_start_an_interval_apart(self, pacer, clock):
        """A bot limited to 10 calls a second gets one every 0.11 s (10% slack)."""
        async def turns():
            return [await pacer.wait_turn(LIMITED) for _ in range(3)]

        assert asyncio.run(turns()) == [None, None, None]
        assert clock.slept == pytest.approx([RATE_SLACK / 10] * 2)

    def test_a_turn_beyond_the_horizon_is_a_time_to_come_back(self, store, clock):
        """A turn further off than a quarter of the lease is not waited for: the caller gets
        when it is, and gives the delivery back until then."""
        pacer = Pacer(StoreThread(store), lease=4, retry_cap=3600, clock=clock,
                      sleep=clock.sleep)
        slow = Engati("3", "d", "k", rate_limit=0.5)  # a call every 2.2 s; horizon 1 s

        async def turns():
            return [await pacer.wait_turn(slow) for _ in range(2)]

        start = clock.now
        assert asyncio.run(turns()) == [None, pytest.approx(start + 2.2)]
        assert clock.slept == []


class TestPauses:
    def test_a_429_with_retry_after_pauses_the_bot(self, pacer, clock):
        """After a 429 asking for 5 s, the bot's next call waits until then."""
        started = clock.now

        async def scenario():
            await pacer.heed(BOT, rate_limited(5), started)
            return await pacer.wait_turn(BOT)

        assert asyncio.run(scenario()) is None
        assert clock.now == started + 5

    def test_a_long_pause_gives_the_delivery_back(self, pacer, clock):
        """A pause beyond the horizon is returned, capped at RELAY_RETRY_CAP, not slept."""
        started = clock.now

        async def scenario():
            await pacer.heed(BOT, rate_limited(99999), started)
            return await pacer.wait_turn(BOT)

        assert asyncio.run(scenario()) == started + 3600
        assert clock.slept == []

    @pytest.mark.parametrize("failure", [rate_limited(None), rate_limited(5, status=425)])
    def test_only_a_429_with_retry_after_pauses(self, pacer, clock, failure):
        """Without a Retry-After, or for another status, the bot is not paused."""
        async def scenario():
            await pacer.heed(BOT, failure, clock.now)
            return await pacer.wait_turn(BOT)

        assert asyncio.run(scenario()) is None
        assert clock.slept == []

    def test_another_workers_pause_is_heeded(self, store, pacer, clock):
        """A pause stored by another worker holds this one's calls too."""
        store.pause(BOT.bot, clock.now + 3)
        start = clock.now
        assert asyncio.run(pacer.wait_turn(BOT)) is None
        assert clock.now == start + 3

    def test_a_rate_limited_bot_paused_meanwhile_comes_back_later(self, store, pacer, clock):
        """A call waiting for its slot while another worker meets a 429 does not start."""
        async def turns():
            first = await pacer.wait_turn(LIMITED)
            store.pause(LIMITED.bot, clock.now + 30)  # while the next call waits its slot
            return first, await pacer.wait_turn(LIMITED)

        start = clock.now
        assert asyncio.run(turns()) == (None, start + 30)
