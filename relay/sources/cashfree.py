"""Cashfree Payment Gateway: `x-webhook-signature` is the base64 HMAC-SHA256, keyed with the
client secret, of `x-webhook-timestamp` (milliseconds) followed by the raw body.

Facts from Cashfree's docs and its Python SDK (docs/sources.md links them):
- Headers: `x-webhook-signature`, `x-webhook-timestamp` (e.g. 1746427759733: milliseconds),
  `x-webhook-version` (2023-08-01, 2025-01-01), `x-webhook-attempt`, and on 2025-01-01
  `x-idempotency-key`. The signed content is timestamp + raw body with nothing between
  (cashfree-pg-sdk-python `PGVerifyWebhookSignature`: `timestamp+rawBody`). The SDK checks
  no age; the preset refuses timestamps more than 5 minutes off, as its docs ask of replays.
- The body: `{"data": {"order": {"order_id", ...}, "payment": {"cf_payment_id",
  "payment_status", ...}, "customer_details": {"customer_phone", ...}}, "event_time",
  "type": "PAYMENT_SUCCESS_WEBHOOK"}`. Each payment attempt has its own cf_payment_id, and
  Cashfree's idempotency guide says to deduplicate by it: the default `id` is the type with
  the cf_payment_id (both signed), or the body's digest where a body has no payment.
- Cashfree retries (by default 3 times, at 2, 10 and 30 minutes) a delivery that does not
  get HTTP 200, so every 2xx is answered 200 (`only_200`).
"""

from __future__ import annotations

from relay.sources.base import HmacPreset, HmacScheme


class Cashfree(HmacPreset):
    name = "cashfree"
    secret_env = "CASHFREE_CLIENT_SECRET"
    body_digest = True  # the fallback id, for events without a payment
    id = ("body.data.payment.cf_payment_id && join(':', [to_string(body.type), "
          "to_string(body.data.payment.cf_payment_id)]) || digest")
    scheme = HmacScheme("x-webhook-signature", encoding="base64", signed="{timestamp}{body}",
                        timestamp_header="x-webhook-timestamp", tolerance=300.0,
                        timestamp_unit=0.001)
    only_200 = True
