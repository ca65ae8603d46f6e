"""The failures inbox: failed mappings, dead deliveries and refused signatures grouped by
what a person fixes once for many events. Dead deliveries group by their stored FailureKind,
never by the wording of their error."""

from __future__ import annotations

import re
from typing import Any

from relay.errors import field_errors
from relay.model import FailureKind

_FIELDS = (("phone", "missing or invalid phone"), ("flows", "no flow matched"),
           ("attributes", "missing required field"))
_REFUSED = {FailureKind.AUTH: "Engati refused (4xx)", FailureKind.REJECTED: "Engati refused (4xx)"}


def group_failures(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`Store.failures()` grouped by reason, the largest group first, each with its count,
    its events and one example."""
    groups: dict[str, dict[str, Any]] = {}
    for item in items:
        reason = reason_of(item)
        group = groups.setdefault(reason, {"reason": reason, "count": 0, "event_ids": [],
                                           "example": ""})
        group["count"] += item.get("count", 1)  # refusals come counted, a row a minute
        if item["event_id"] is not None and item["event_id"] not in group["event_ids"]:
            group["event_ids"].append(item["event_id"])
        group["example"] = group["example"] or detail_of(item)
    return sorted(groups.values(), key=lambda g: -g["count"])


def reason_of(item: dict[str, Any]) -> str:
    """The group an item of `Store.failures()` falls in."""
    if item["kind"] == "refused":
        return f"signature refused ({item['mapping']})"
    if item["kind"] == "failed":
        field = re.sub(r"^each\[\d+\]\.", "", (item["errors"] or [{"field": ""}])[0]["field"])
        return next((reason for prefix, reason in _FIELDS if field.startswith(prefix)),
                    "mapping error")
    kind = item.get("failure")
    if kind is None:  # a delivery that died without a recorded kind (written before 0006)
        return "Engati failure"
    kind = FailureKind(kind)
    # A delivery dead of a kind that a retry could help gave up trying.
    return "dead after retries" if kind.retryable else _REFUSED.get(kind, "Engati failure")


def detail_of(item: dict[str, Any]) -> str:
    """What an item says went wrong, as the group's example."""
    if item["kind"] == "refused":
        return str(item["reason"])
    if item["kind"] == "failed":
        return field_errors(item["errors"] or [])
    return str(item["last_error"] or "")
