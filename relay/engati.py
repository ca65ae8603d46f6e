"""Engati's API Trigger: the request a delivery becomes (see shared/engati-api.md).

v2: POST {base}/bot-api/v2.0/customer/{cid}/bot/{bot_key}/flow/{flow_key}, a flat JSON body
    {"user.channel": ..., "user.phone_no": ..., <attribute>: <value>, ...}.
v1: the same path with v1.0 and the same keys in the query string.
Both authenticate with `Authorization: Basic <api key>`: the raw key, not base64 of user:pass.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from relay.errors import EngatiError
from relay.functions import as_text
from relay.mapping import Delivery, Engati

MASK = "***"


def build_request(target: Engati, delivery: Delivery, *, mask: bool = False) -> dict[str, Any]:
    """The HTTP request for one delivery as `{"method", "url", "headers", "json"}`.

    Settings that are missing everywhere appear as `${ENGATI_<KEY>}` so a preview shows
    what to set; the worker refuses to send such a request.
    """
    version = "v1.0" if target.api == "v1" else "v2.0"
    customer, bot = _setting(target.customer_id, "customer_id"), _setting(target.bot_key, "bot_key")
    url = (f"{target.base_url}/bot-api/{version}/customer/{customer}/bot/{bot}"
           f"/flow/{quote(delivery.flow_key, safe='')}")
    api_key = target.api_key or "${ENGATI_API_KEY}"
    if mask and target.api_key:
        api_key = MASK
    headers = {"Authorization": f"Basic {api_key}"}
    payload = {"user.channel": delivery.channel, "user.phone_no": delivery.phone}
    if target.api == "v1":
        payload.update({k: as_text(v) for k, v in delivery.attributes.items()})
        return {"method": "POST", "url": f"{url}?{urlencode(payload)}", "headers": headers,
                "json": None}
    payload.update({k: _as_json_value(v) for k, v in delivery.attributes.items()})
    headers["Content-Type"] = "application/json"
    return {"method": "POST", "url": url, "headers": headers, "json": payload}


def _setting(value: str | None, key: str) -> str:
    return quote(value, safe="") if value else "${ENGATI_" + key.upper() + "}"


def _as_json_value(value: Any) -> Any:
    # Engati attributes are scalars; lists and objects travel as JSON text.
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value



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
