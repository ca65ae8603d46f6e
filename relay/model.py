"""What crosses the relay's layers: every status, as an enum in one place, and the records
the store takes and hands back.

The enums are `StrEnum`s: a member is its value, so it is stored, logged and answered as the
plain text it always was ("accepted", "dead", ...), and compares equal to that text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relay.mapping.model import Result


class Mapped(StrEnum):
    """What a mapping made of a webhook, before anything is stored (a preview shows it)."""

    PLANNED = "planned"  # deliveries to make
    SKIPPED = "skipped"  # the filter said no, or the batch was empty
    FAILED = "failed"  # nothing could be planned: the errors say why


class EventStatus(StrEnum):
    """A stored webhook's status; a receipt's too, which may also say `duplicate`."""

    ACCEPTED = "accepted"  # its deliveries are planned
    SKIPPED = "skipped"
    FAILED = "failed"  # kept for `relay replay` once the mapping is fixed
    DUPLICATE = "duplicate"  # receipts only: it was stored before, nothing new is

    @classmethod
    def of(cls, mapped: Mapped) -> EventStatus:
        """The status a webhook is stored under: planned deliveries make it accepted."""
        return cls.ACCEPTED if mapped is Mapped.PLANNED else cls(mapped.value)


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting, or in flight under a worker's lease
    DELIVERED = "delivered"
    DEAD = "dead"  # given up: replay queues it again
    CANCELLED = "cancelled"  # by a later webhook's `cancel:` or an operator: never called


class LookupStatus(StrEnum):
    """A lookup's status (relay/lookup/): the fetch a webhook needs before it is mapped."""

    PENDING = "pending"  # waiting, or in flight under a worker's lease
    DONE = "done"  # fetched and mapped: its delivery is planned
    SKIPPED = "skipped"  # fetched; the filter said no
    FAILED = "failed"  # fetched, but the answer could not be mapped: replay maps it again
    DEAD = "dead"  # never fetched (gone, refused, or out of attempts): replay fetches again


class Outcome(StrEnum):
    """What one attempt came to."""

    DELIVERED = "delivered"
    RETRY = "retry"  # the delivery stays pending, due again later
    DEAD = "dead"

    @property
    def status(self) -> DeliveryStatus:
        """The delivery's status after an attempt with this outcome."""
        return DeliveryStatus.PENDING if self is Outcome.RETRY else DeliveryStatus(self.value)


class FailureKind(StrEnum):
    """Why an attempt failed, stored with its delivery: the failures inbox (and, later,
    alerts) group by it, never by the wording of an error."""

    UNCONFIGURED = "unconfigured"  # the Engati settings are not set: nothing was sent
    TIMEOUT = "timeout"  # no answer within RELAY_ENGATI_TIMEOUT
    UNREACHABLE = "unreachable"  # no connection to Engati
    AUTH = "auth"  # 401 or 403: the API key is wrong
    RATE_LIMITED = "rate_limited"  # 429
    REJECTED = "rejected"  # another 4xx: Engati refuses the request itself
    SERVER = "server"  # 5xx: Engati's trouble
    CODE = "code"  # a 2xx whose status.code is not 1000

    @property
    def retryable(self) -> bool:
        """Whether trying again can help (a delivery dead of such a kind gave up)."""
        return self not in (FailureKind.AUTH, FailureKind.REJECTED, FailureKind.CODE)


@dataclass(frozen=True)
class Received:
    """A webhook to store: its endpoint, the request as it is kept (headers lower-cased,
    credentials redacted), and what the mapping made of it."""

    mapping: str
    body: bytes
    headers: dict[str, str]
    query: dict[str, Any]
    result: Result
    received_at: float


@dataclass(frozen=True)
class Receipt:
    """What became of an inbound webhook."""

    status: EventStatus
    event_id: int
    deliveries: int = 0
    lookups: int = 0  # fetches queued before mapping (a mapping with `lookup:`)
    cancelled: int | None = None  # pending deliveries its `cancel:` cancelled (None: none)


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
    """One call to Engati for a delivery, as recorded, and what it leaves the delivery with."""

    delivery_id: int
    started_at: float
    duration_ms: float
    outcome: Outcome
    http_status: int | None = None
    engati_code: int | None = None
    error: str | None = None
    failure: FailureKind | None = None  # None when delivered
    next_at: float | None = None  # when a retry is due (outcome RETRY)


@dataclass(frozen=True)
class ClaimedLookup:
    """A lookup a worker holds, with the stored request it was planned from (to map the
    answer with)."""

    id: int
    event_id: int
    mapping: str
    item: int | None
    url: str
    attempts: int
    created_at: float
    lease_until: float
    tries: list[dict[str, Any]]
    body: bytes
    headers: dict[str, Any]
    query: dict[str, Any]


@dataclass(frozen=True)
class Looked:
    """What one attempt of a lookup came to, as the store records it: the try (for its
    page), the status it leaves the lookup with, and, once fetched, the mapped answer."""

    lookup_id: int
    tried: dict[str, Any]  # {"at", "ms", "http", "error"}: no token, no answer body
    status: LookupStatus
    next_at: float | None = None  # when a retry is due (status PENDING)
    error: str | None = None
    result: Result | None = None  # the answer mapped (DONE, SKIPPED, FAILED)
