"""WooCommerce: `x-wc-webhook-signature` is the base64 HMAC-SHA256 of the raw body.

Facts from WooCommerce's own source, `plugins/woocommerce/includes/class-wc-webhook.php`
(docs/sources.md links it):
- `deliver()` posts `trim(wp_json_encode($payload))` as `application/json`, with
  `X-WC-Webhook-Source` (the shop's URL), `-Topic` (`order.created`), `-Resource`, `-Event`,
  `-Signature`, `-ID` (the webhook's id) and `-Delivery-ID`. `generate_signature()` is the
  base64 HMAC-SHA256 of that body, keyed with the webhook's secret (`wp_specialchars_decode`d:
  the secret as typed). No timestamp is signed.
- `get_new_delivery_id()` is `wp_hash(webhook id . the current second)`: two deliveries of
  one webhook in the same second share it, and it is not signed. So the preset deduplicates by
  the signed body (`digest`), as for Shopify and Razorpay, not by X-WC-Webhook-Delivery-ID.
- A delivery counts as delivered on 200-302; WooCommerce does not retry a failed one, and
  disables the webhook after more than 5 consecutive failures: so a webhook that is stored
  but cannot be mapped is answered 200 (with status "failed"), not 422.
- `deliver_ping()` runs when a webhook is saved active for the first time: it posts the body
  `webhook_id=<id>` with no signature and no X-WC-* header, and saving fails unless the answer
  is exactly 200. The preset lets that exact body in unsigned (`unsigned`), records it as a
  skipped event (`evaluate`; one per webhook id, then duplicates) and answers 200 (`only_200`).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from relay.mapping import Mapping, Result
from relay.sources.base import HmacPreset, HmacScheme, Inbound

_PING = re.compile(rb"webhook_id=([0-9]{1,20})")


class WooCommerce(HmacPreset):
    name = "woocommerce"
    secret_env = "WOOCOMMERCE_WEBHOOK_SECRET"
    body_digest = True
    id = "digest"  # x-wc-webhook-delivery-id is neither signed nor unique
    scheme = HmacScheme("x-wc-webhook-signature", encoding="base64")
    only_200 = True

    def unsigned(self, inbound: Inbound) -> bool:
        return self.scheme.header not in inbound.headers and _ping(inbound.raw) is not None

    def envelope(self, raw: bytes, headers: dict[str, str],
                 query: dict[str, Any]) -> dict[str, Any]:
        webhook_id = _ping(raw)
        if webhook_id is None:
            return super().envelope(raw, headers, query)
        # Posted as a form (or with no type at all, depending on WordPress's HTTP transport):
        # read the same way whatever it says, not refused as "not JSON".
        return {"body": {"webhook_id": webhook_id},
                "headers": {k.lower(): v for k, v in headers.items()}, "query": query,
                "digest": hashlib.sha256(raw).hexdigest()}

    def respond(self, status: int, answer: dict[str, Any]) -> tuple[int, bytes, str]:
        # A webhook stored but not mapped (422 elsewhere) is answered 200 too: WooCommerce
        # would not retry it, only count it, and a run of orders without a phone would
        # switch the webhook off. The answer's status says "failed"; replay maps it again.
        return super().respond(200 if status == 422 else status, answer)

    def evaluate(self, mapping: Mapping, envelope: dict[str, Any], raw: bytes,
                 now: float | None = None) -> Result:
        webhook_id = _ping(raw)
        if webhook_id is not None:
            return Result(skipped=f"WooCommerce's ping for webhook {webhook_id}: the webhook "
                          "was saved", key=f"woocommerce-ping:{webhook_id}")
        return super().evaluate(mapping, envelope, raw, now)


def _ping(raw: bytes) -> str | None:
    """The webhook id of WooCommerce's ping body, or None for anything else."""
    match = _PING.fullmatch(raw)
    return match.group(1).decode() if match else None
