"""HubSpot: a JSON array of events, split into one delivery each.

v3 (the default, and the only version accepted unless a mapping says otherwise):
`X-HubSpot-Signature-v3` is the base64 HMAC-SHA256 (client secret) of method + URL + body +
`X-HubSpot-Request-Timestamp` (milliseconds; 5 minutes of tolerance). The URL is the public one
HubSpot called (see RELAY_PUBLIC_URL and RELAY_TRUST_PROXY), with the characters HubSpot's
request-validation page lists (%3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B) decoded.

v1 and v2 (`X-HubSpot-Signature`, with `X-HubSpot-Signature-Version`) are SHA-256 of secret +
content: open to length extension, so that whoever captured one signed body could append to
it, and without a timestamp, so that a captured request could be replayed for ever. They are
accepted only where a mapping says `legacy_signatures: true` (HubSpot workflow webhook
actions sign so), never when a v3 header is present, and only for application/json, whose
parser refuses the padding bytes an extension has to append.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from relay.errors import SignatureError
from relay.sources.base import Inbound, Preset, any_equal, check_age, encode, hmac_digest

if TYPE_CHECKING:
    from relay.mapping.yamlfile import Report
    from relay.sources.endpoint import Endpoint

TOLERANCE = 300
# HubSpot decodes these before signing the URL (and only these: %20 and the rest stay).
_DECODED = {"3A": ":", "2F": "/", "3F": "?", "40": "@", "21": "!", "24": "$", "27": "'",
            "28": "(", "29": ")", "2A": "*", "2C": ",", "3B": ";"}
_ENCODED = re.compile("%(" + "|".join(_DECODED) + ")", re.IGNORECASE)


class HubSpot(Preset):
    name = "hubspot"
    signed = True
    secret_env = "HUBSPOT_CLIENT_SECRET"
    content_types = ("application/json",)
    each = "body"
    # eventId alone is not guaranteed unique
    id = "concat(item.portalId, ':', item.subscriptionId, ':', item.eventId)"

    def validate(self, report: Report, data: dict[str, Any]) -> None:
        # legacy_signatures is this preset's key: the base refuses it for every other one.
        super().validate(report, {k: v for k, v in data.items() if k != "legacy_signatures"})

    def check(self, secret: str, endpoint: Endpoint, inbound: Inbound, now: float) -> None:
        headers = inbound.headers
        if "x-hubspot-signature-v3" in headers or not endpoint.legacy_signatures:
            given = headers.get("x-hubspot-signature-v3")
            if not given:
                raise SignatureError("no X-HubSpot-Signature-v3 header (v1 and v2 signatures "
                                     "are accepted only with legacy_signatures: true)")
            stamp = headers.get("x-hubspot-request-timestamp")
            check_age(stamp, now, TOLERANCE, unit=0.001)
            if not any_equal(v3(secret, inbound, stamp or ""), [given]):
                raise SignatureError(f"X-HubSpot-Signature-v3 does not match for "
                                     f"{signed_url(inbound.url)}")
            return
        given = headers.get("x-hubspot-signature")
        if not given:
            raise SignatureError("no X-HubSpot-Signature-v3 or X-HubSpot-Signature header")
        version = headers.get("x-hubspot-signature-version", "v1")
        if version not in ("v1", "v2"):
            raise SignatureError(f"unknown X-HubSpot-Signature-Version {version[:10]!r}")
        if not any_equal(legacy(secret, inbound, version), [given]):
            raise SignatureError(f"X-HubSpot-Signature ({version}) does not match")

    def sign(self, secret: str, endpoint: Endpoint, inbound: Inbound,
             now: float) -> tuple[dict[str, str], dict[str, str]]:
        stamp = str(int(now * 1000))
        return {"x-hubspot-request-timestamp": stamp,
                "x-hubspot-signature-v3": v3(secret, inbound, stamp)}, {}


def signed_url(url: str) -> str:
    """The URL as HubSpot signs it."""
    return _ENCODED.sub(lambda m: _DECODED[m.group(1).upper()], url)


def v3(secret: str, inbound: Inbound, stamp: str) -> str:
    message = (inbound.method + signed_url(inbound.url)).encode() + inbound.raw + stamp.encode()
    return encode(hmac_digest("sha256", secret.encode(), message), "base64")


def legacy(secret: str, inbound: Inbound, version: str) -> str:
    """v1: SHA-256 of secret + body; v2: of secret + method + URL + body."""
    content = inbound.raw if version == "v1" else (
        (inbound.method + inbound.url).encode() + inbound.raw)
    return hashlib.sha256(secret.encode() + content).hexdigest()
