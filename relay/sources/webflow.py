"""Webflow (form submissions and other site webhooks): `x-webflow-signature` is the hex
HMAC-SHA256 of `<x-webflow-timestamp>:<raw body>`, the timestamp in milliseconds.

Facts from Webflow's docs and its JS SDK (docs/sources.md links them):
- Only webhooks created through the API carry the two headers: with an OAuth app's token
  the key is the app's client secret; with a site token (since April 2025) it is the
  `secretKey` the create call returned. Webhooks made in the site dashboard sign nothing.
- webflow-api's `verifySignature` (src/wrapper/WebhooksClient.ts) signs
  `${x-webflow-timestamp}:${body}` and compares the hex digest; the docs refuse requests
  older than 5 minutes.
- The body is `{"triggerType": "form_submission", "payload": {"name", "siteId", "data":
  {<field name>: <value>}, "submittedAt", "id", "formId"}}`; `payload.id` names the
  submission and is the dedup key (other triggers: the body's digest).
- Webflow counts anything but HTTP 200 as a failure and retries it 3 times, 10 minutes
  apart: every 2xx is answered 200.
"""

from __future__ import annotations

from relay.sources.base import HmacPreset, HmacScheme


class Webflow(HmacPreset):
    name = "webflow"
    only_200 = True  # a 202 would count as a failure
    secret_env = "WEBFLOW_WEBHOOK_SECRET"
    body_digest = True  # the fallback key for triggers other than form_submission
    id = "body.triggerType == 'form_submission' && body.payload.id || digest"
    scheme = HmacScheme("x-webflow-signature", encoding="hex", signed="{timestamp}:{body}",
                        timestamp_header="x-webflow-timestamp", tolerance=300,
                        timestamp_unit=0.001)
