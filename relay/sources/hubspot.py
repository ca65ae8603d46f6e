"""HubSpot: a JSON array of events, split into one delivery each.

v3: `X-HubSpot-Signature-v3` is the base64 HMAC-SHA256 (client secret) of method + full URL +
body + `X-HubSpot-Request-Timestamp` (milliseconds, 5 minutes of tolerance). Older apps send
`X-HubSpot-Signature` (v1: SHA-256 of secret + body; v2: of secret + method + URL + body).
The URL is the public one HubSpot called: see RELAY_PUBLIC_URL and RELAY_TRUST_PROXY.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from relay.errors import SignatureError
from relay.sources.base import Inbound, Preset, any_equal, check_age, encode, hmac_digest

if TYPE_CHECKING:
    from relay.mapping import Mapping

TOLERANCE = 300


class HubSpot(Preset):
    name = "hubspot"
    signed = True
    secret_env = "HUBSPOT_CLIENT_SECRET"
    each = "body"
    # eventId alone is not guaranteed unique
    id = "concat(item.portalId, ':', item.subscriptionId, ':', item.eventId)"

    def check(self, secret: str, mapping: Mapping, inbound: Inbound, now: float) -> None:
        headers = inbound.headers
        if "x-hubspot-signature-v3" in headers:
            stamp = headers.get("x-hubspot-request-timestamp")
            check_age(stamp, now, TOLERANCE, unit=0.001)
            if not any_equal(v3(secret, inbound, stamp or ""), [headers["x-hubspot-signature-v3"]]):
                raise SignatureError(f"X-HubSpot-Signature-v3 does not match for {inbound.url}")
            return
        given = headers.get("x-hubspot-signature")
        if not given:
            raise SignatureError("no X-HubSpot-Signature-v3 or X-HubSpot-Signature header")
        version = headers.get("x-hubspot-signature-version", "v1")
        source = inbound.raw if version == "v1" else (inbound.method + inbound.url).encode() + (
            inbound.raw)
        if not any_equal(hashlib.sha256(secret.encode() + source).hexdigest(), [given]):
            raise SignatureError(f"X-HubSpot-Signature ({version}) does not match")

    def sign(self, secret: str, mapping: Mapping, inbound: Inbound,
             now: float) -> tuple[dict[str, str], dict[str, str]]:
        stamp = str(int(now * 1000))
        return {"x-hubspot-request-timestamp": stamp,
                "x-hubspot-signature-v3": v3(secret, inbound, stamp)}, {}


def v3(secret: str, inbound: Inbound, stamp: str) -> str:
    message = (inbound.method + inbound.url).encode() + inbound.raw + stamp.encode()
    return encode(hmac_digest("sha256", secret.encode(), message), "base64")
