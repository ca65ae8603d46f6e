"""Replay: map a stored event again with the current mapping and queue what is not delivered.

Shared by `relay replay`, the API and the console. A delivery that already succeeded is never
queued again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from relay.errors import BodyError, field_errors
from relay.mapping import Result
from relay.model import Mapped
from relay.store.base import Store


class Remaps(Protocol):
    """What maps a stored request again: its endpoint (relay.sources.Endpoint), named by the
    event's mapping. A protocol, so that the store needs nothing of the sources package."""

    def evaluate_raw(self, raw: bytes, headers: dict[str, str], query: dict[str, Any],
                     now: float | None = None) -> Result: ...


@dataclass(frozen=True)
class Replayed:
    event_id: int
    ok: bool
    message: str

    def to_dict(self) -> dict[str, object]:
        return {"event_id": self.event_id, "ok": self.ok, "message": self.message}


def replay_event(store: Store, find: Callable[[str], Remaps | None], event_id: int,
                 now: float) -> Replayed:
    event = store.event(event_id)
    if event is None:
        return Replayed(event_id, False, "no such event")
    endpoint = find(event["mapping"])
    if endpoint is None:
        return Replayed(event_id, False, f"mapping {event['mapping']!r} no longer exists")
    try:
        # As it arrived: a schedule's delay counts from then (a time gone is sent at once).
        result = endpoint.evaluate_raw(event["body"], event["headers"], event["query"],
                                       event["received_at"])
    except BodyError as exc:
        return Replayed(event_id, False, str(exc))
    counts = store.replay(event_id, result, now)
    message = f"{counts['queued']} queued, {counts['already_delivered']} already delivered"
    if result.status is Mapped.SKIPPED:
        message += f"; skipped ({result.skipped})"
    if result.errors:
        return Replayed(event_id, False, message + "; " + field_errors(result.errors))
    return Replayed(event_id, True, message)
