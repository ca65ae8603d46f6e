"""Engati's API Trigger: the request a delivery becomes (see shared/engati-api.md).

v2: POST {base}/bot-api/v2.0/customer/{cid}/bot/{bot_key}/flow/{flow_key}, a flat JSON body
    {"user.channel": ..., "user.phone_no": ..., <attribute>: <value>, ...}.
v1: the same path with v1.0 and the same keys in the query string.
Both authenticate with `Authorization: Basic <api key>`: the raw key, not base64 of user:pass.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx

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


# Engati asks us to come back later, or is having trouble: the same call may succeed.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
SUCCESS_CODE = 1000


class EngatiClient:
    """Sends built requests with injected httpx.AsyncClients (tests pass a MockTransport).

    Several clients take turns: one httpx pool slows down as its connections grow past a few
    dozen, so a worker with hundreds of calls in flight spreads them over small pools.
    """

    def __init__(self, clients: httpx.AsyncClient | list[httpx.AsyncClient]):
        self._turns = itertools.cycle(clients if isinstance(clients, list) else [clients])

    async def send(self, request: dict[str, Any]) -> Answer:
        """Send one request; raise EngatiError saying whether a retry can help."""
        try:
            response = await next(self._turns).request(
                request["method"], request["url"], headers=request["headers"],
                json=request["json"])
        except httpx.TimeoutException:
            raise EngatiError("timed out waiting for Engati", retryable=True) from None
        except httpx.HTTPError as exc:
            raise EngatiError(f"could not reach Engati: {type(exc).__name__}",
                              retryable=True) from None
        return classify(response)


def classify(response: httpx.Response) -> Answer:
    """Success is a 2xx whose body, when it has a `status.code`, says 1000."""
    status = response.status_code
    code, desc = _engati_status(response)
    if 200 <= status < 300:
        if code is None or code == SUCCESS_CODE:
            return Answer(status, code)
        raise EngatiError(f"Engati answered HTTP {status} with status {code} {desc}".strip(),
                          retryable=False, status=status, code=code)
    retryable = status in RETRYABLE_STATUSES or status >= 500
    detail = f" with status {code} {desc}".rstrip() if code is not None else ""
    hint = " (check the API key)" if status in (401, 403) else ""
    raise EngatiError(f"Engati answered HTTP {status}{detail}{hint}", retryable=retryable,
                      status=status, code=code, retry_after=retry_after(response))


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date); None when absent."""
    value = response.headers.get("retry-after")
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


def _engati_status(response: httpx.Response) -> tuple[int | None, str]:
    try:
        status = response.json().get("status")
        code = status.get("code")
        return (int(code) if code is not None else None), str(status.get("desc") or "")
    except (ValueError, AttributeError, TypeError):
        return None, ""
