"""What the store's tests share: webhooks to accept, and their results."""

from __future__ import annotations

import pytest

from relay.errors import FieldError
from relay.mapping import Delivery, Result
from relay.model import Receipt, Received
from relay.store import Store

NOW = 1_700_000_000.0
LEASE = 60.0
FAILED = Result(errors=(FieldError("phone", "no value at body.phone"),))

# The mark of a test that the fake store (tests/support/fake_store.py) keeps too: it runs on
# SQLite, on PostgreSQL and on the fake (which needs no database: it runs once, beside
# SQLite's), as `any_store`.
everywhere = pytest.mark.parametrize(
    ("database_url", "any_store"), [("sqlite", "real"), ("postgresql", "real"), ("sqlite", "fake")],
    indirect=True, ids=["sqlite", "postgresql", "fake"])


def planned(*keys: str | None, item: bool = False) -> Result:
    """A mapping result with one delivery per dedup key."""
    return Result(tuple(
        Delivery("FLOW", "whatsapp", f"9198123456{i:02d}", {"n": i}, key, i if item else None)
        for i, key in enumerate(keys)))


def received(result: Result, mapping: str = "leads", now: float = NOW,
             body: bytes = b'{"a": 1}', headers: dict[str, str] | None = None) -> Received:
    return Received(mapping, body, {"content-type": "application/json"}
                    if headers is None else headers, {}, result, now)


def accept(store: Store, result: Result, mapping: str = "leads", now: float = NOW,
           body: bytes = b'{"a": 1}') -> Receipt:
    return store.accept(received(result, mapping, now, body))
