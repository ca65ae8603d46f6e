"""What the store takes and hands back: receipts for webhooks, claimed deliveries, attempts,
and the rule for whether an attempt may set its delivery's outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Receipt:
    """What became of an inbound webhook."""

    status: str  # accepted | duplicate | skipped | failed
    event_id: int
    deliveries: int = 0


@dataclass(frozen=True)
class Claimed:
    """A delivery a worker holds until it records the outcome or the lease runs out."""

    id: int
    event_id: int
    mapping: str
    flow_key: str
    channel: str
    phone: str
    attributes: dict[str, Any]
    attempts: int
    created_at: float
    lease_until: float


@dataclass(frozen=True)
class Attempt:
    """One call to Engati, as recorded."""

    started_at: float
    duration_ms: float
    outcome: str  # delivered | retry | dead
    http_status: int | None = None
    engati_code: int | None = None
    error: str | None = None


STATUS_AFTER = {"delivered": "delivered", "dead": "dead"}  # a retry stays pending


def keeps(current: tuple[str, str | None] | None, attempt: Attempt, worker: str) -> bool:
    """Whether an attempt may set its delivery's outcome: the delivery is still pending, and
    still leased to this worker unless the attempt succeeded (a success always counts)."""
    if current is None or current[0] != "pending":
        return False
    return attempt.outcome == "delivered" or current[1] == worker
