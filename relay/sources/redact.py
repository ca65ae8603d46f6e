"""Credentials in headers and query parameters never reach the database, logs or pages."""

from __future__ import annotations

import re
from collections.abc import Collection
from functools import lru_cache
from typing import Any

REDACTED = "[redacted]"
# Names that carry credentials by convention. Generous on purpose: a harmless header shown as
# [redacted] costs little, a credential kept in clear costs a lot.
_SENSITIVE = re.compile(
    r"auth|cookie|token|secret|signature|(^|[-_])sig($|[-_])|hmac|passw|credential|bearer"
    r"|session|api[-_]?key|access[-_]?key|private[-_]?key|^(x-)?key$",
    re.IGNORECASE)


def redact(values: dict[str, Any], also: Collection[str] = ()) -> dict[str, Any]:
    """A copy with the value of every credential-like name replaced, and of every name in
    `also` (lower-cased: what a mapping verifies with, whatever it is called)."""
    return {k: REDACTED if k.lower() in also or _sensitive(k) else v
            for k, v in values.items()}


def _sensitive(name: str) -> bool:
    """Whether a name carries credentials by convention. Senders send the same few names:
    each short one is tested once (a cache bounded in count and in each name's length, so
    that a flood of new or long names only evicts)."""
    return _tested(name) if len(name) <= 64 else _SENSITIVE.search(name) is not None


@lru_cache(maxsize=1024)
def _tested(name: str) -> bool:
    return _SENSITIVE.search(name) is not None
