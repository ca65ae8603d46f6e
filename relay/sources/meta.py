"""Meta Lead Ads (Facebook and Instagram lead forms), through a Page webhook on `leadgen`.

Facts from Meta's docs (docs/sources.md links them):
- Subscribing: Meta sends `GET <callback>?hub.mode=subscribe&hub.challenge=<an int>&
  hub.verify_token=<the Verify Token typed in the app's Webhooks settings>`, and wants the
  challenge back. `handshake` answers it: 200 with the challenge as text/plain when the
  token matches the mapping's `verify_token` (compared in constant time), 403 otherwise. It
  is the only GET a mapping serves.
- Notifications are POSTs signed `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw
  body, keyed with the app secret>`. The body is `{"object": "page", "entry": [{"id",
  "time", "changes": [{"field": "leadgen", "value": {"leadgen_id", "form_id", "page_id",
  "ad_id", "created_time"}}]}]}`: one delivery per leadgen change, deduplicated by its
  leadgen id (which the signature covers).
- The webhook names the lead; its answers are read from the Graph API (`GET /<version>/
  <leadgen_id>` with a Page access token that has leads_retrieval, answered `{"id",
  "created_time", "field_data": [{"name", "values": [...]}]}`).

Not in PRESETS yet: without the lookup stage (issue 15) a mapping cannot reach the lead's
phone, so `source: meta-lead-ads` is offered once the worker can fetch the lead. The
handshake (Preset.handshake, the intake's GET) and the signature are built and tested
(tests/unit/sources/test_meta.py registers the preset for its tests).
"""

from __future__ import annotations

import hmac
import json
import re
from typing import TYPE_CHECKING, Any

from relay.sources.base import HmacPreset, HmacScheme

if TYPE_CHECKING:
    from relay.mapping.yamlfile import Report
    from relay.sources.endpoint import Endpoint

_CHALLENGE = re.compile(r"[0-9]{1,32}")  # "an int you must pass back": nothing else echoed


class MetaLeadAds(HmacPreset):
    name = "meta-lead-ads"
    secret_env = "META_APP_SECRET"
    verify_token_env = "META_VERIFY_TOKEN"
    each = "body.entry[].changes[] | [?field=='leadgen']"
    id = "item.value.leadgen_id"
    scheme = HmacScheme("x-hub-signature-256", encoding="hex", prefix="sha256=")
    methods = ("GET", "POST")

    def validate(self, report: Report, data: dict[str, Any]) -> None:
        super().validate(report, data)
        if "verify_token" not in data:
            report.add(("source",), "meta-lead-ads answers Meta's subscription check with "
                       f"a verify token: add verify_token: ${{{self.verify_token_env}}}")

    def handshake(self, endpoint: Endpoint,
                  query: dict[str, Any]) -> tuple[int, bytes, str] | None:
        token, challenge = query.get("hub.verify_token"), query.get("hub.challenge")
        if query.get("hub.mode") != "subscribe" or not isinstance(challenge, str):
            return _refused(400, "this is Meta's subscription check: hub.mode=subscribe, "
                            "hub.challenge and hub.verify_token are expected")
        expected = endpoint.verify_token
        if not (expected and isinstance(token, str)
                and hmac.compare_digest(token.encode(), expected.encode())):
            return _refused(403, "hub.verify_token is not this mapping's verify_token")
        if not _CHALLENGE.fullmatch(challenge):
            return _refused(400, "hub.challenge is not the number Meta sends")
        return 200, challenge.encode(), "text/plain; charset=utf-8"


def _refused(status: int, message: str) -> tuple[int, bytes, str]:
    return status, json.dumps({"error": message}).encode(), "application/json"
