"""Google Ads lead forms: the webhook's key travels in the body, as `google_key`.

Facts from Google's lead form webhook docs (docs/sources.md links them):
- A JSON POST: `lead_id` (unique across forms: "use this to dedupe leads"), `api_version`,
  `form_id`, `campaign_id`, `gcl_id`, `adgroup_id`, `creative_id`, `google_key` (the key
  the advertiser typed next to the webhook URL, "to verify the request is from Google"),
  `is_test` (true for the form builder's "Send test data"), and `user_column_data`
  `[{column_id, column_name?, string_value}]`: the phone under column_id PHONE_NUMBER.
- The form builder's test is green when the answer is HTTP 200: every 2xx is answered 200.

Nothing signs the body: the key is the credential, compared in constant time with the
mapping's secret. It is never stored: the body is kept (and seen by expressions) with
`google_key` as `[redacted]`, as a credential in a header would be. Expressions also see
`columns`, each column's string_value by its id (`columns.PHONE_NUMBER`), so that a
mapping needs no filter expression to read one.
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any

from relay.errors import BodyError, SignatureError
from relay.sources.base import Inbound, Preset
from relay.sources.body import parse_json
from relay.sources.redact import REDACTED

if TYPE_CHECKING:
    from relay.sources.endpoint import Endpoint

KEY = "google_key"


class GoogleAds(Preset):
    name = "google-ads"
    only_200 = True  # a 202 would count as a failure
    signed = True
    secret_env = "GOOGLE_ADS_WEBHOOK_KEY"
    content_types = ("application/json",)
    id = "body.lead_id"
    envelope_keys = ("columns",)

    def check(self, secret: str, endpoint: Endpoint, inbound: Inbound, now: float) -> None:
        key = _key(inbound.raw)
        if key is None:
            raise SignatureError(f"no {KEY} in the body")
        if not hmac.compare_digest(key.encode(), secret.encode()):
            raise SignatureError(f"{KEY} does not match")

    def envelope(self, raw: bytes, headers: dict[str, str],
                 query: dict[str, Any]) -> dict[str, Any]:
        envelope = super().envelope(raw, headers, query)
        body = envelope["body"]
        if isinstance(body, dict) and KEY in body:
            body[KEY] = REDACTED  # what a replay of the stored body would see
        envelope["columns"] = _columns(body)
        return envelope

    def stored_body(self, raw: bytes) -> bytes:
        try:
            body = parse_json(raw)
        except BodyError:
            return raw  # never parsed, so never verified or mapped: nothing to take out
        if not isinstance(body, dict) or KEY not in body:
            return raw
        body[KEY] = REDACTED
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    def sign_body(self, secret: str, endpoint: Endpoint, raw: bytes) -> bytes:
        try:
            body = parse_json(raw)
        except BodyError:
            return raw  # the relay will say why it refuses it
        if not isinstance(body, dict):
            return raw
        return json.dumps({**body, KEY: secret}, ensure_ascii=False).encode()


def _key(raw: bytes) -> str | None:
    try:
        body = parse_json(raw)
    except BodyError:
        return None
    key = body.get(KEY) if isinstance(body, dict) else None
    return key if isinstance(key, str) and key else None


def _columns(body: Any) -> dict[str, Any]:
    """`user_column_data` by column id: {"PHONE_NUMBER": "+1 650-555-0123", ...}; the first
    of a repeated id wins."""
    rows = body.get("user_column_data") if isinstance(body, dict) else None
    columns: dict[str, Any] = {}
    for row in rows if isinstance(rows, list) else ():
        if isinstance(row, dict) and isinstance(row.get("column_id"), str):
            columns.setdefault(row["column_id"], row.get("string_value"))
    return columns
