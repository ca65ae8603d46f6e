"""The client for Engati's API Trigger, and how its answers are judged (`classify`).

The requests themselves are built in request.py.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

from relay.delivery.http import Client, Reply, WireError
from relay.errors import EngatiError
from relay.model import FailureKind


@dataclass(frozen=True)
class Answer:
    """Engati accepted the call."""

    http_status: int
    code: int | None


SUCCESS_CODE = 1000


class EngatiClient:
    """Sends built requests over keep-alive connections (http.py's client: its docstring says
    why not aiohttp's or httpx's, whose AsyncClient spent 1.35 ms of CPU a call at 256 in
    flight). Use as `async with client:` on the loop that sends. `ssl_context` is for tests:
    by default the system's certificate authorities vouch for Engati."""

    def __init__(self, *, connections: int = 100, timeout: float = 15.0,
                 clock: Callable[[], float] = time.time,
                 ssl_context: ssl.SSLContext | None = None):
        self.connections = connections
        self.timeout = timeout
        self.clock = clock  # for a Retry-After given as a date
        self.ssl_context = ssl_context
        self._client: Client | None = None

    async def __aenter__(self) -> EngatiClient:
        self._client = Client(limit=self.connections, timeout=self.timeout,
                              connect_timeout=min(5.0, self.timeout), ssl_context=self.ssl_context)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def send(self, request: dict[str, Any]) -> Answer:
        """Send one request; raise EngatiError saying whether a retry can help."""
        assert self._client is not None, "use the client as `async with client:`"
        body = b"" if request["json"] is None else json.dumps(request["json"]).encode()
        try:
            reply = await self._client.request(request["method"], request["url"],
                                               request["headers"], body)
        except TimeoutError:
            raise EngatiError("timed out waiting for Engati",
                              failure=FailureKind.TIMEOUT) from None
        except WireError as exc:
            raise EngatiError(f"could not reach Engati: {exc}",
                              failure=FailureKind.UNREACHABLE) from None
        except ValueError as exc:  # the settings make a request HTTP cannot carry
            raise EngatiError(f"cannot call Engati: {exc}; check the ENGATI_* settings",
                              failure=FailureKind.UNCONFIGURED) from None
        except Exception as exc:
            # Whatever else: the attempt is still recorded (and counted towards the delivery's
            # end) rather than its task dying with the lease left to run out, again and again.
            raise EngatiError(f"the call to Engati failed: {type(exc).__name__}: {exc}",
                              failure=FailureKind.UNREACHABLE) from None
        return classify(reply, self.clock())


def unconfigured(missing: list[str]) -> EngatiError:
    """Why a call was not made: the Engati settings `missing` are set nowhere. Setting them
    can help, so a delivery waits for it as it would for Engati to come back."""
    unset = ", ".join(f"ENGATI_{key.upper()}" for key in missing)
    return EngatiError(f"engati settings not set: {unset}", failure=FailureKind.UNCONFIGURED)


def classify(reply: Reply, now: float) -> Answer:
    """Success is a 2xx whose body, when it has a `status.code`, says 1000; anything else
    raises EngatiError with the kind of failure. `now` (epoch seconds) dates a Retry-After."""
    status = reply.status
    code, desc = _engati_status(reply.body)
    if 200 <= status < 300:
        if code is None or code == SUCCESS_CODE:
            return Answer(status, code)
        raise EngatiError(f"Engati answered HTTP {status} with status {code} {desc}".strip(),
                          failure=FailureKind.CODE, status=status, code=code)
    detail = f" with status {code} {desc}".rstrip() if code is not None else ""
    hint = " (check the API key)" if status in (401, 403) else ""
    raise EngatiError(f"Engati answered HTTP {status}{detail}{hint}", failure=failure_of(status),
                      status=status, code=code, retry_after=retry_after(reply.headers, now))


def failure_of(status: int) -> FailureKind:
    """The kind of failure a status other than 2xx is. 408 (Engati timed out waiting for us)
    and 425 (too early: come back later) are worth another try, as 429 and 5xx are."""
    if status in (401, 403):
        return FailureKind.AUTH
    if status in (425, 429):
        return FailureKind.RATE_LIMITED
    if status == 408:
        return FailureKind.TIMEOUT
    if status >= 500:
        return FailureKind.SERVER
    return FailureKind.REJECTED


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds from a Retry-After header (seconds, or an HTTP date compared with `now`, in
    epoch seconds); None when absent or unreadable."""
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
    return max(0.0, when.timestamp() - now)


def _engati_status(body: bytes) -> tuple[int | None, str]:
    try:
        status = json.loads(body).get("status")
        code = status.get("code")
        return (int(code) if code is not None else None), str(status.get("desc") or "")
    except (ValueError, AttributeError, TypeError):
        return None, ""
