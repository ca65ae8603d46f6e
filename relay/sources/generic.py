"""Any sender that posts JSON or a form: verified as its mapping's `verify:` says.

    verify: {type: token, header: X-Relay-Token}        # or query: token
    verify: {type: basic}                               # secret is "user:password"
    verify: {type: hmac, header: X-Signature, algorithm: sha256, encoding: hex,
             prefix: "sha256=", signed: "{timestamp}.{body}",
             timestamp_header: X-Timestamp, tolerance: 300}
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from relay.errors import SignatureError
from relay.sources.base import HmacScheme, Inbound, Preset, any_equal

if TYPE_CHECKING:
    from relay.mapping import Mapping


class Generic(Preset):
    name = "generic"

    def verifies(self, mapping: Mapping) -> bool:
        return bool(mapping.verify)  # generic verifies only when told how

    def check(self, secret: str, mapping: Mapping, inbound: Inbound, now: float) -> None:
        options = mapping.verify
        kind = options["type"]
        if kind == "hmac":
            scheme(options).check(secret, inbound, now)
        elif kind == "basic":
            auth = inbound.headers.get("authorization", "")
            if not auth.lower().startswith("basic "):
                raise SignatureError("no Authorization: Basic header")
            try:
                given = base64.b64decode(auth[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise SignatureError("malformed Authorization header") from None
            if not any_equal(secret, [given]):
                raise SignatureError("HTTP basic credentials do not match")
        else:
            name = options.get("header") or options.get("query")
            values = inbound.headers if "header" in options else inbound.query
            given = values.get(name.lower() if "header" in options else name)
            if not isinstance(given, str) or not given:
                raise SignatureError(f"no {name} token")
            if not any_equal(secret, [given]):
                raise SignatureError(f"the {name} token does not match")

    def sign(self, secret: str, mapping: Mapping, inbound: Inbound,
             now: float) -> tuple[dict[str, str], dict[str, str]]:
        options = mapping.verify or {}
        kind = options.get("type")
        if kind == "hmac":
            return scheme(options).sign(secret, inbound, now), {}
        if kind == "basic":
            return {"authorization": "Basic " + base64.b64encode(secret.encode()).decode()}, {}
        if kind == "token" and "header" in options:
            return {options["header"]: secret}, {}
        if kind == "token":
            return {}, {options["query"]: secret}
        return {}, {}


def scheme(options: dict) -> HmacScheme:
    timestamp_header = options.get("timestamp_header")
    return HmacScheme(
        header=options["header"].lower(),
        algorithm=options.get("algorithm", "sha256"),
        encoding=options.get("encoding", "hex"),
        prefix=options.get("prefix", ""),
        signed=options.get("signed", "{body}"),
        timestamp_header=timestamp_header.lower() if timestamp_header else None,
        tolerance=options.get("tolerance", 300 if timestamp_header else None),
    )
