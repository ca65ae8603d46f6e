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
  "created_time", "field_data": [{"name", "values": [...]}]}`): the preset's default
  `lookup:` (relay/lookup/ fetches it in the worker), seen by expressions as `lead`, with
  `lead.fields.<name>` the first value of each field (field names vary per form).
- Graph API errors are `{"error": {"message", "type", "code", "is_transient"}}`; codes 1, 2,
  4, 17, 32, 341 and 613 (and is_transient) are temporary: throttling, a service hiccup.
  Others (100: the lead is gone or the id is wrong; 190: the token expired; 200: the
  permission is missing) will not pass by waiting.
"""

from __future__ import annotations

import hmac
import json
import re
from typing import TYPE_CHECKING, Any, ClassVar

from relay.sources.base import HmacPreset, HmacScheme

if TYPE_CHECKING:
    from relay.mapping.yamlfile import Report
    from relay.sources.endpoint import Endpoint

TRANSIENT_CODES = (1, 2, 4, 17, 32, 341, 613)  # Graph API error codes worth a retry
_CHALLENGE = re.compile(r"[0-9]{1,32}")  # "an int you must pass back": nothing else echoed


class MetaLeadAds(HmacPreset):
    name = "meta-lead-ads"
    secret_env = "META_APP_SECRET"
    verify_token_env = "META_VERIFY_TOKEN"
    each = "body.entry[].changes[] | [?field=='leadgen']"
    id = "item.value.leadgen_id"
    scheme = HmacScheme("x-hub-signature-256", encoding="hex", prefix="sha256=")
    methods = ("GET", "POST")
    only_200 = True  # "respond to all Event Notifications with 200 OK"
    # META_GRAPH_URL points it elsewhere (`relay sandbox` stands in for the Graph API).
    lookup: ClassVar[dict[str, Any] | None] = {
        "url": "${META_GRAPH_URL:-https://graph.facebook.com}/${META_GRAPH_VERSION:-v25.0}/"
               "{item.value.leadgen_id}", "as": "lead"}
    lookup_draft: ClassVar[dict[str, Any] | None] = {
        "token_env": "META_PAGE_TOKEN", "phone": "lead.fields.phone_number",
        "answer": {"id": "444444444444", "created_time": "2026-12-01T10:00:00+0000",
                   "field_data": [{"name": "full_name", "values": ["Asha Rao"]},
                                  {"name": "phone_number", "values": ["+919812345678"]}]}}

    def validate(self, report: Report, data: dict[str, Any]) -> None:
        super().validate(report, data)
        if "verify_token" not in data:
            report.add(("source",), "meta-lead-ads answers Meta's subscription check with "
                       f"a verify token: add verify_token: ${{{self.verify_token_env}}}")
        lookup = data.get("lookup")
        if not isinstance(lookup, dict) or "token" not in lookup:
            report.add(("source",), "meta-lead-ads reads each lead from the Graph API with a "
                       "Page access token: add lookup: with token: ${META_PAGE_TOKEN} under it")

    def looked_up(self, answer: Any) -> Any:
        """The lead, with `fields`: each field's first value by its name."""
        if not isinstance(answer, dict):
            return answer
        fields = {f["name"]: (f.get("values") or [None])[0]
                  for f in answer.get("field_data") or ()
                  if isinstance(f, dict) and isinstance(f.get("name"), str)
                  and isinstance(f.get("values") or [], list)}
        return {**answer, "fields": fields}

    def lookup_retryable(self, status: int, answer: Any) -> bool:
        error = answer.get("error") if isinstance(answer, dict) else None
        if isinstance(error, dict) and (error.get("is_transient") is True
                                        or error.get("code") in TRANSIENT_CODES):
            return True
        return super().lookup_retryable(status, answer)

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
