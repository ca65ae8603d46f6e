"""A mapping as loaded: what a mapping file compiles to, and what it makes of a webhook.

Pure data; `load.py` builds it from YAML and `evaluate.py` applies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from jmespath.parser import ParsedResult
from jmespath.visitor import TreeInterpreter

from relay.errors import FieldError, Problem
from relay.mapping.compiled import Run, compile_tree
from relay.mapping.functions import OPTIONS
from relay.model import Mapped

_INTERPRETER = TreeInterpreter(OPTIONS)


@dataclass(frozen=True)
class Expr:
    """A compiled JMESPath expression that remembers its text."""

    text: str
    parsed: ParsedResult = field(repr=False, compare=False)
    search: Run = field(init=False, repr=False, compare=False)  # the data -> its result

    def __post_init__(self) -> None:
        # Compiled once (compiled.py): the interpreter walked the tree on every webhook.
        object.__setattr__(self, "search", compile_tree(self.parsed.parsed, _INTERPRETER))


@dataclass(frozen=True)
class Phone:
    path: Expr
    region: str | None = None
    format: str = "digits"


@dataclass(frozen=True)
class Attribute:
    name: str
    path: Expr | None = None
    value: Any = None
    required: bool = False
    default: Any = None


@dataclass(frozen=True)
class Flow:
    flow_key: str
    when: Expr | None = None


@dataclass(frozen=True)
class Engati:
    """Which bot a mapping calls; a None means the setting is missing everywhere."""

    customer_id: str | None
    bot_key: str | None
    api_key: str | None = field(repr=False)
    api: str = "v2"
    base_url: str = "https://api.engati.ai"
    rate_limit: float | None = None  # calls a second to this bot, across every worker

    @property
    def bot(self) -> str:
        """The bot's identity for pacing: customer id and bot key."""
        return f"{self.customer_id}/{self.bot_key}"

    def missing(self) -> list[str]:
        return [k for k in ("customer_id", "bot_key", "api_key") if not getattr(self, k)]


@dataclass(frozen=True)
class Lookup:
    """`lookup:`: a GET the worker makes for each webhook (each item under `each`) before the
    rest of the mapping runs, whose JSON answer expressions see under `name`."""

    text: str  # the URL template as written
    parts: tuple[str | Expr, ...]  # its literal text and {expression}s, in order
    name: str = "lookup"
    token: str | None = field(default=None, repr=False)  # Authorization: Bearer
    timeout: float = 10.0


@dataclass(frozen=True)
class Schedule:
    """`schedule:`: when a delivery is sent, `delay` after the webhook arrived, or at the time
    the `at` expression gives plus `offset`; `key` is what a later webhook's `cancel:` names
    it by."""

    delay: float = 0.0  # seconds
    at: Expr | None = None
    offset: float = 0.0  # seconds, added to `at` (negative: before it)
    if_past: str = "send"  # send | skip: a time from `at` that is already past
    timezone: str = "UTC"  # for `at` times written without a zone
    horizon: float = 90 * 86400.0  # seconds: a time further ahead fails the item
    key: Expr | None = None


@dataclass(frozen=True)
class QuietHours:
    """`quiet_hours:`: no delivery between `start` and `end` (a window across midnight when
    `start` is later), on the clocks of `timezone`: an IANA name, or "recipient" (the phone
    number's zone, else `fallback`)."""

    start: time
    end: time
    timezone: str = "recipient"
    fallback: str | None = None


@dataclass(frozen=True)
class Cancel:
    """`cancel:`: a webhook for which `when` holds (always, without it) cancels the pending
    deliveries whose `schedule.key` equals `key`, of the mappings named (this one, when
    none is). `keep`: seconds a cancellation waits for a delivery still to arrive."""

    key: Expr
    mappings: tuple[str, ...] = ()
    when: Expr | None = None
    keep: float = 86400.0


@dataclass(frozen=True)
class Mapping:
    """What a mapping file says about turning a webhook into deliveries.

    How the sender is verified (its preset, secrets, verify options) is the endpoint's
    business, not the mapping's: see relay/sources/endpoint.py.
    """

    engati: Engati
    phone: Phone | None  # None (and no flows): a mapping that only cancels
    flows: tuple[Flow, ...]
    attributes: tuple[Attribute, ...] = ()
    channel: str = "whatsapp"
    filter: Expr | None = None
    each: Expr | None = None
    id: Expr | None = None
    lookup: Lookup | None = None
    schedule: Schedule | None = None
    quiet_hours: QuietHours | None = None
    cancel: Cancel | None = None
    tests: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    # What the static checks (lint.py) found: the file loads, `relay check` warns.
    warnings: tuple[Problem, ...] = field(default=(), repr=False, compare=False)


def unset_engati(mapping: Mapping) -> str | None:
    """What `relay check` and `relay serve` say of a mapping whose Engati settings are unset
    (None for a mapping that only cancels: it never calls Engati)."""
    missing = mapping.engati.missing() if mapping.phone is not None else []
    if not missing:
        return None
    unset = ", ".join(f"{key} (ENGATI_{key.upper()})" for key in missing)
    return (f"engati settings not set: {unset}; until they are, deliveries fail, are retried "
            "and go dead (after RELAY_MAX_ATTEMPTS attempts or RELAY_MAX_AGE)")


MAX_RULE_TEXT = 1000  # characters of a rule's explanation that a delivery row keeps


@dataclass(frozen=True)
class Rule:
    """Which entry of `flows` chose a delivery's flow, and why: first match wins, so every
    entry before it had a `when` that was false."""

    number: int  # 1-based, as a person counts the entries of `flows`
    when: str | None  # its condition; None: the fallback (an entry without `when`)
    false: tuple[str, ...] = ()  # the `when` of each entry before it, in order

    def explain(self) -> str:
        """E.g. "rule 2: when `attributes.city == 'Mumbai'` was true; rule 1 `...` was
        false"."""
        chosen = (f"rule {self.number}: when `{self.when}` was true" if self.when is not None
                  else f"rule {self.number}: the fallback (no `when`)")
        return "; ".join([chosen, *(f"rule {n} `{w}` was false"
                                    for n, w in enumerate(self.false, 1))])

    def stored(self) -> str:
        """The explanation as a delivery row keeps it (capped: a mapping may have many long
        rules)."""
        text = self.explain()
        return text if len(text) <= MAX_RULE_TEXT else text[:MAX_RULE_TEXT - 1] + "…"


@dataclass(frozen=True)
class Delivery:
    """One planned Engati call."""

    flow_key: str
    channel: str
    phone: str
    attributes: dict[str, Any]
    dedup_key: str | None = None
    item: int | None = None  # the index in the batch under `each`
    # The flow rule that matched (None only for deliveries made outside evaluate()); not part
    # of what a delivery is: two deliveries to the same flow are equal whichever rule chose it.
    rule: Rule | None = field(default=None, compare=False)
    send_at: float | None = None  # None: at once; else when (schedule:, quiet_hours:)
    why: str | None = None  # how send_at was found, in words
    cancel_key: str | None = None  # schedule.key: what a later cancel: names it by

    def to_dict(self) -> dict[str, Any]:
        found = {
            "flow_key": self.flow_key,
            "channel": self.channel,
            "phone": self.phone,
            "attributes": self.attributes,
            "id": self.dedup_key,
        }
        if self.send_at is not None:
            found.update(send_at=iso_utc(self.send_at), why=self.why)
        if self.cancel_key is not None:
            found["cancel_key"] = self.cancel_key
        return found


@dataclass(frozen=True)
class Cancellation:
    """What a webhook's `cancel:` asks: the pending deliveries of `mappings` (empty: the
    webhook's own mapping) with this key are cancelled, now and for `keep` seconds."""

    key: str
    mappings: tuple[str, ...]
    keep: float

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "mappings": list(self.mappings), "keep": self.keep}


@dataclass(frozen=True)
class Fetch:
    """One planned lookup: the URL to GET, and the item and key of the delivery it leads to."""

    url: str
    dedup_key: str | None = None
    item: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "id": self.dedup_key}


@dataclass(frozen=True)
class Result:
    """What a webhook maps to: deliveries, and every field that failed.

    Under `each`, items that fail are listed in `errors` while the others are delivered. A
    mapping with `lookup:` plans fetches instead, at first: the worker maps each fetched
    answer into its delivery.
    """

    deliveries: tuple[Delivery, ...] = ()
    errors: tuple[FieldError, ...] = ()
    skipped: str | None = None  # why nothing is to be delivered, when that is not an error
    # The sender's event id for a failed or skipped webhook (the mapping's `id`; under `each`,
    # every item's), so that its resends are stored once. None when planned (the deliveries
    # carry their own keys) or when some item has no id.
    key: str | None = None
    lookups: tuple[Fetch, ...] = ()
    cancels: tuple[Cancellation, ...] = ()

    @property
    def status(self) -> Mapped:
        if self.deliveries or self.lookups or self.cancels:
            return Mapped.PLANNED
        return Mapped.FAILED if self.errors else Mapped.SKIPPED




def iso_utc(at: float) -> str:
    """A time as previews and tests show it: ISO 8601 in UTC, to the second."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
