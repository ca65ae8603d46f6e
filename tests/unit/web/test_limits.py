"""The web process's rate limit, on a fake clock: a sliding window per key, the wait it
answers, and memory that stays bounded whatever keys come."""

from __future__ import annotations

from relay.web.limits import RateLimit


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class TestRateLimit:
    def test_takes_up_to_the_limit_then_answers_the_wait(self):
        """Three in a window are taken; the fourth is refused with the whole seconds until
        the oldest leaves the window, rounded up."""
        clock = Clock()
        limit = RateLimit(3, 60.0, clock=clock)
        assert [limit.take("a") for _ in range(3)] == [0, 0, 0]
        clock.now += 10.5
        assert limit.take("a") == 50

    def test_a_refused_hit_is_not_counted(self):
        """Waiting out the window is enough, however often the key knocked meanwhile."""
        clock = Clock()
        limit = RateLimit(1, 60.0, clock=clock)
        assert limit.take("a") == 0
        for _ in range(5):
            clock.now += 10
            assert limit.take("a") > 0
        clock.now = 1060.0
        assert limit.take("a") == 0

    def test_the_window_slides(self):
        """A hit leaves the window `window` seconds after it came, not at a window's end."""
        clock = Clock()
        limit = RateLimit(2, 60.0, clock=clock)
        assert limit.take("a") == 0
        clock.now += 30
        assert limit.take("a") == 0
        clock.now += 29
        assert limit.take("a") == 1
        clock.now += 1  # the first hit is 60 s old
        assert limit.take("a") == 0
        assert limit.take("a") == 30  # the second, from 1030, leaves at 1090

    def test_the_wait_is_at_least_a_second(self):
        clock = Clock()
        limit = RateLimit(1, 60.0, clock=clock)
        limit.take("a")
        clock.now += 59.9999
        assert limit.take("a") == 1

    def test_keys_are_limited_apart(self):
        limit = RateLimit(1, 60.0, clock=Clock())
        assert limit.take("a") == 0
        assert limit.take("a") > 0
        assert limit.take("b") == 0

    def test_memory_stays_bounded_forgetting_the_least_recent_key(self):
        """However many keys come, at most `max_keys` are remembered: the oldest is
        forgotten (and may act again), the newest still limited."""
        limit = RateLimit(1, 60.0, max_keys=3, clock=Clock())
        for n in range(10):
            assert limit.take(f"10.0.0.{n}") == 0
        assert limit.take("10.0.0.9") > 0
        assert limit.take("10.0.0.8") > 0
        assert limit.take("10.0.0.0") == 0  # forgotten
