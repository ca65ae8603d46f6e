"""Engati's API Trigger: the request a delivery becomes (see shared/engati-api.md).

v2: POST {base}/bot-api/v2.0/customer/{cid}/bot/{bot_key}/flow/{flow_key}, a flat JSON body
    {"user.channel": ..., "user.phone_no": ..., <attribute>: <value>, ...}.
v1: the same path with v1.0 and the same keys in the query string.
Both authenticate with `Authorization: Basic <api key>`: the raw key, not base64 of user:pass.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

from relay.mapping.functions import as_text
from relay.mapping.model import Delivery, Engati

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
