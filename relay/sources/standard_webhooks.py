"""Standard Webhooks (and Svix, its origin): `webhook-id`, `webhook-timestamp` and
`webhook-signature: v1,<base64> ...`, HMAC-SHA256 of "id.timestamp.body" keyed with the
base64-decoded part of the secret after `whsec_`; 5 minutes of tolerance either way."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from relay.errors import SignatureError
from relay.sources.base import Inbound, Preset, any_equal, check_age, encode, hmac_digest

if TYPE_CHECKING:
    from relay.sources.endpoint import Endpoint

TOLERANCE = 300


class StandardWebhooks(Preset):
    name = "standard-webhooks"
    signed = True
    secret_env = "WEBHOOK_SECRET"
    content_types = ("application/json",)
    # The id of the header set that was verified: with webhook-signature, webhook-id; else
    # svix-id. (An unsigned webhook-id beside a svix-* signature must not pick the key.)
    id = 'headers."webhook-signature" && headers."webhook-id" || headers."svix-id"'

    def check(self, secret: str, endpoint: Endpoint, inbound: Inbound, now: float) -> None:
        prefix = "webhook" if "webhook-signature" in inbound.headers else "svix"
        msg_id = inbound.headers.get(f"{prefix}-id")
        signatures = inbound.headers.get(f"{prefix}-signature")
        if not msg_id or not signatures:
            raise SignatureError("no webhook-id / webhook-signature headers (nor svix-*)")
        stamp = inbound.headers.get(f"{prefix}-timestamp")
        check_age(stamp, now, TOLERANCE)
        expected = _signature(secret, msg_id, stamp or "", inbound.raw)
        given = [s.partition(",")[2] for s in signatures.split() if s.startswith("v1,")]
        if not any_equal(expected, given):
            raise SignatureError(f"no v1 signature in {prefix}-signature matches")

    def sign(self, secret: str, endpoint: Endpoint, inbound: Inbound,
             now: float) -> tuple[dict[str, str], dict[str, str]]:
        msg_id = f"msg_{int(now * 1000):x}"
        stamp = str(int(now))
        return {"webhook-id": msg_id, "webhook-timestamp": stamp,
                "webhook-signature": "v1," + _signature(secret, msg_id, stamp, inbound.raw)}, {}


def _signature(secret: str, msg_id: str, stamp: str, raw: bytes) -> str:
    encoded = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise SignatureError("the secret is not a whsec_<base64> key") from None
    return encode(hmac_digest("sha256", key, f"{msg_id}.{stamp}.".encode() + raw), "base64")
