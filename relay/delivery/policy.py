"""The retry policy: what an attempt leaves a delivery with.

A failure worth retrying is due again after an exponential backoff with full jitter, so that
many deliveries failing together do not retry together, never sooner than Engati's
Retry-After and never later than RELAY_RETRY_CAP; a delivery is dead once it failed
RELAY_MAX_ATTEMPTS times or is older than RELAY_MAX_AGE, or at once when retrying cannot help.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from relay.config import Settings
from relay.delivery.engati import Answer
from relay.errors import EngatiError
from relay.model import Attempt, Claimed, Outcome


@dataclass(frozen=True)
class RetryPolicy:
    base: float  # seconds: the first backoff's ceiling, doubled after every failure
    cap: float  # seconds: no backoff (nor Retry-After) beyond this
    max_attempts: int
    max_age: float  # seconds from the delivery's creation
    rng: Callable[[], float] = field(default=random.random, compare=False)

    @classmethod
    def of(cls, settings: Settings, rng: Callable[[], float] = random.random) -> RetryPolicy:
        return cls(settings.retry_base, settings.retry_cap, settings.max_attempts,
                   settings.max_age, rng)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1, 2, ...)."""
        delay = self.rng() * min(self.cap, self.base * 2.0 ** (attempt - 1))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap))
        return delay

    def again(self, number: int, created_at: float, now: float, retry_after: float | None,
              error: str) -> tuple[float | None, str]:
        """After failed attempt `number` of something worth retrying (a delivery, a lookup)
        queued at `created_at`: when it is due again (None: given up) and the error to
        record, saying so when it gave up."""
        if number >= self.max_attempts:
            return None, f"{error}; gave up after {number} attempts"
        if now - created_at >= self.max_age:
            return None, f"{error}; gave up after {self.max_age:.0f}s"
        return now + self.backoff(number, retry_after), error

    def attempt(self, claimed: Claimed, came_to: Answer | EngatiError, started: float,
                duration_ms: float, now: float) -> Attempt:
        """The Attempt to record for a call to `claimed` that `came_to` an answer or a
        failure, judged at `now`."""
        if isinstance(came_to, Answer):
            return Attempt(claimed.id, started, duration_ms, Outcome.DELIVERED,
                           came_to.http_status, came_to.code)
        outcome, error, next_at = Outcome.DEAD, str(came_to), None
        if came_to.retryable:
            next_at, error = self.again(claimed.attempts + 1, claimed.created_at, now,
                                        came_to.retry_after, error)
            outcome = Outcome.DEAD if next_at is None else Outcome.RETRY
        return Attempt(claimed.id, started, duration_ms, outcome, came_to.status, came_to.code,
                       error, came_to.failure, next_at)
