"""The client for Engati's API Trigger, and how its answers are judged (`classify`).

The requests themselves are built in request.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from relay.errors import EngatiError


@dataclass(frozen=True)
class Answer:
    """Engati accepted the call."""

    http_status: int
    code: int | None


@dataclass(frozen=True)
class Reply:
    """What came back over the wire, before it is judged."""

    status: int
    headers: Mapping[str, str]  # case-insensitive where it matters: Retry-After
    body: bytes


# Engati asks us to come back later, or is having trouble: the same call may succeed.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
SUCCESS_CODE = 1000


class EngatiClient:
    """Sends built requests over one aiohttp session of keep-alive connections.

    aiohttp rather than httpx here: at 256 calls in flight, httpx's AsyncClient spent 1.35 ms
    of CPU per call and aiohttp 0.16 ms (benchmarks/README.md), and the worker's ceiling is
    its CPU. Use as `async with client:` on the loop that sends.
    """

    def __init__(self, *, connections: int = 100, timeout: float = 15.0):
        self.connections = connections
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> EngatiClient:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.connections),
            timeout=aiohttp.ClientTimeout(total=self.timeout, connect=min(5.0, self.timeout)),
            skip_auto_headers=("User-Agent",),
            # Calls for different bots share the session: none may carry what another set.
            cookie_jar=aiohttp.DummyCookieJar())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, request: dict[str, Any]) -> Answer:
        """Send one request; raise EngatiError saying whether a retry can help."""
        assert self._session is not None, "use the client as `async with client:`"
        body = None if request["json"] is None else json.dumps(request["json"]).encode()
        try:
            async with self._session.request(request["method"], request["url"],
                                              headers=request["headers"], data=body) as response:
                reply = Reply(response.status, response.headers, await response.read())
        except TimeoutError:
            raise EngatiError("timed out waiting for Engati", retryable=True) from None
        except aiohttp.ClientError as exc:
            raise EngatiError(f"could not reach Engati: {type(exc).__name__}",
                              retryable=True) from None
        return classify(reply)


def classify(reply: Reply) -> Answer:
    """Success is a 2xx whose body, when it has a `status.code`, says 1000."""
    status = reply.status
    code, desc = _engati_status(reply.body)
    if 200 <= status < 300:
        if code is None or code == SUCCESS_CODE:
            return Answer(status, code)
        raise EngatiError(f"Engati answered HTTP {status} with status {code} {desc}".strip(),
                          retryable=False, status=status, code=code)
    retryable = status in RETRYABLE_STATUSES or status >= 500
    detail = f" with status {code} {desc}".rstrip() if code is not None else ""
    hint = " (check the API key)" if status in (401, 403) else ""
    raise EngatiError(f"Engati answered HTTP {status}{detail}{hint}", retryable=retryable,
                      status=status, code=code, retry_after=retry_after(reply.headers))


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date); None when absent."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _engati_status(body: bytes) -> tuple[int | None, str]:
    try:
        status = json.loads(body).get("status")
        code = status.get("code")
        return (int(code) if code is not None else None), str(status.get("desc") or "")
    except (ValueError, AttributeError, TypeError):
        return None, ""
