"""A fake clock for the delivery tests: time moves only when the code under test sleeps (or
the test says so), so timing is asserted exactly, without waiting."""

from __future__ import annotations

NOW = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = NOW):
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
