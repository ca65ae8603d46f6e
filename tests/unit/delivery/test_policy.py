"""The retry policy: what an attempt leaves a delivery with."""

from __future__ import annotations

import pytest

from relay.config import Settings
from relay.delivery.engati import Answer
from relay.delivery.policy import RetryPolicy
from relay.errors import EngatiError
from relay.model import Attempt, Claimed, FailureKind, Outcome

NOW = 1_700_000_000.0


def policy(rng=0.5, **settings):
    defaults = {"retry_base": 2.0, "retry_cap": 3600.0, "max_attempts": 5, "max_age": 86400.0}
    return RetryPolicy.of(Settings(**{**defaults, **settings}), rng=lambda: rng)


def claimed(attempts=0, created_at=NOW):
    return Claimed(7, 3, "leads", "F", "whatsapp", "919812345678", {}, attempts, created_at,
                   NOW + 60)


def judge(came_to, attempts=0, created_at=NOW, **settings) -> Attempt:
    return policy(**settings).attempt(claimed(attempts, created_at), came_to, NOW, 12.5,
                                      NOW + 1)


def server_error(retry_after=None):
    return EngatiError("Engati answered HTTP 503", failure=FailureKind.SERVER, status=503,
                       retry_after=retry_after)


class TestBackoff:
    def test_exponential_with_full_jitter_and_a_cap(self):
        """Delay = random share of min(cap, base * 2^(n-1))."""
        full = policy(rng=1.0, retry_base=2, retry_cap=60)
        assert [full.backoff(n) for n in (1, 2, 3, 6, 7, 20)] == [2, 4, 8, 60, 60, 60]
        assert policy(rng=0.25, retry_base=2, retry_cap=60).backoff(3) == 2

    def test_retry_after_is_honoured_but_capped(self):
        """Engati's Retry-After is a floor, itself capped."""
        none = policy(rng=0.0, retry_base=2, retry_cap=60)
        assert (none.backoff(1, 30), none.backoff(1, 9999)) == (30, 60)

    def test_defaults_span_about_a_day(self):
        """With the defaults, the expected schedule before giving up by attempts is a day."""
        settings = Settings()
        default = RetryPolicy.of(settings, rng=lambda: 0.5)
        expected = sum(default.backoff(n) for n in range(1, settings.max_attempts))
        assert 18 * 3600 < expected < 30 * 3600
        assert settings.max_age == 86400


class TestAttempt:
    def test_an_answer_is_delivered(self):
        """Engati's answer makes the attempt delivered, with its status and code, no failure."""
        assert judge(Answer(200, 1000)) == Attempt(7, NOW, 12.5, Outcome.DELIVERED, 200, 1000)

    def test_a_failure_worth_retrying_is_due_after_the_backoff(self):
        """The next try is due base * 2^(n-1) * jitter after the attempt was judged."""
        attempt = judge(server_error(), attempts=2)
        assert attempt == Attempt(7, NOW, 12.5, Outcome.RETRY, 503, None,
                                  "Engati answered HTTP 503", FailureKind.SERVER,
                                  next_at=NOW + 1 + 0.5 * 8)

    def test_retry_after_sets_the_earliest_next_try(self):
        """Retry-After beyond the backoff is waited out, but never beyond the cap."""
        assert judge(server_error(retry_after=90)).next_at == NOW + 1 + 90
        assert judge(server_error(retry_after=9999), retry_cap=100).next_at == NOW + 1 + 100

    @pytest.mark.parametrize("kind", [FailureKind.AUTH, FailureKind.REJECTED, FailureKind.CODE])
    def test_a_failure_that_cannot_pass_is_dead_at_once(self, kind):
        """Refusals are not retried, and their error is left as Engati's words."""
        attempt = judge(EngatiError("Engati answered HTTP 400", failure=kind, status=400))
        assert (attempt.outcome, attempt.failure, attempt.error, attempt.next_at) == (
            Outcome.DEAD, kind, "Engati answered HTTP 400", None)

    def test_gives_up_after_max_attempts(self):
        """The last allowed attempt that fails makes the delivery dead, saying why."""
        attempt = judge(server_error(), attempts=1, max_attempts=2)
        assert (attempt.outcome, attempt.failure, attempt.error) == (
            Outcome.DEAD, FailureKind.SERVER,
            "Engati answered HTTP 503; gave up after 2 attempts")

    def test_gives_up_after_max_age(self):
        """A delivery older than RELAY_MAX_AGE that fails again is dead."""
        attempt = judge(server_error(), created_at=NOW - 100, max_age=50)
        assert (attempt.outcome, attempt.error) == (
            Outcome.DEAD, "Engati answered HTTP 503; gave up after 50s")

    def test_unconfigured_waits_like_any_retry(self):
        """Missing settings can be set: the delivery waits, saying what to set."""
        attempt = judge(EngatiError("engati settings not set: ENGATI_API_KEY",
                                    failure=FailureKind.UNCONFIGURED))
        assert (attempt.outcome, attempt.failure, attempt.http_status) == (
            Outcome.RETRY, FailureKind.UNCONFIGURED, None)
