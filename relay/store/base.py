"""The store contract. (Issue 13 moves the contract here; for now, the rule of the delivery
state machine that both backends apply.)"""

from __future__ import annotations

from relay.model import Attempt, DeliveryStatus, Outcome


def keeps(current: tuple[str, str | None] | None, attempt: Attempt, worker: str) -> bool:
    """Whether an attempt may set its delivery's outcome: the delivery is still pending, and
    still leased to this worker unless the attempt succeeded (a success always counts)."""
    if current is None or current[0] != DeliveryStatus.PENDING:
        return False
    return attempt.outcome == Outcome.DELIVERED or current[1] == worker
