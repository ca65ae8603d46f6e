"""The failures inbox: grouped by what a person fixes once, dead deliveries by stored kind."""

from __future__ import annotations

import pytest

from relay.model import FailureKind
from relay.store.failures import group_failures


def dead(kind, error="Engati answered HTTP 400", event_id=7):
    return {"kind": "dead", "mapping": "leads", "last_error": error, "failure": kind,
            "event_id": event_id}


def test_counted_refusals_add_up():
    """Refusals come counted (a row per mapping, minute and kind): a group adds the counts;
    items without one count once; the largest group comes first."""
    items = [
        {"kind": "refused", "mapping": "leads", "reason": "no signature header",
         "event_id": None, "count": 40},
        {"kind": "refused", "mapping": "leads", "reason": "no match", "event_id": None,
         "count": 2},
        {"kind": "refused", "mapping": "leads", "reason": "no match", "event_id": None},
        dead(FailureKind.REJECTED),
    ]
    groups = group_failures(items)
    assert [(g["reason"], g["count"], g["event_ids"]) for g in groups] == [
        ("signature refused (leads)", 43, []), ("Engati refused (4xx)", 1, [7])]
    assert groups[0]["example"] == "no signature header"


@pytest.mark.parametrize(("kind", "reason"), [
    (FailureKind.TIMEOUT, "dead after retries"),
    (FailureKind.UNREACHABLE, "dead after retries"),
    (FailureKind.SERVER, "dead after retries"),
    (FailureKind.RATE_LIMITED, "dead after retries"),
    (FailureKind.UNCONFIGURED, "dead after retries"),
    (FailureKind.AUTH, "Engati refused (4xx)"),
    (FailureKind.REJECTED, "Engati refused (4xx)"),
    (FailureKind.CODE, "Engati failure"),
    (None, "Engati failure"),
])
def test_dead_deliveries_group_by_their_kind_not_their_wording(kind, reason):
    """A kind a retry could help died after retries; a refusal is Engati's 4xx; a 2xx with a
    bad code, or a delivery without a recorded kind, is an Engati failure. The wording of
    the error plays no part."""
    (group,) = group_failures([dead(kind, error="whatever it said")])
    assert (group["reason"], group["example"]) == (reason, "whatever it said")


def test_failed_mappings_group_by_the_field_that_failed():
    """Mapping errors group by what to fix: the phone, the flows, a required attribute."""
    def failed(field, event_id):
        return {"kind": "failed", "mapping": "leads", "event_id": event_id,
                "errors": [{"field": field, "message": "no value"}]}

    groups = {g["reason"]: g for g in group_failures([
        failed("phone", 1), failed("each[3].phone", 2), failed("flows", 3),
        failed("attributes.email", 4), failed("filter", 5)])}
    assert {reason: g["event_ids"] for reason, g in groups.items()} == {
        "missing or invalid phone": [1, 2], "no flow matched": [3],
        "missing required field": [4], "mapping error": [5]}
    assert groups["no flow matched"]["example"] == "flows: no value"
