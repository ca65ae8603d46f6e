"""Credentials in headers and query parameters never reach the database, logs or pages."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"
_SENSITIVE = re.compile(r"authorization|cookie|token|secret|signature|hmac|api[-_]?key|password",
                        re.IGNORECASE)


def redact(values: dict[str, Any]) -> dict[str, Any]:
    """A copy with the value of every credential-like name replaced."""
    return {k: REDACTED if _SENSITIVE.search(k) else v for k, v in values.items()}
