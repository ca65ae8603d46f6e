"""Jotform: multipart/form-data whose `rawRequest` field is the answers as a JSON string
(decoded in place). Jotform signs nothing, so the webhook URL carries a secret token:
`https://<host>/hooks/<name>?token=<secret>`."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from relay.errors import BodyError, SignatureError
from relay.sources.base import Inbound, Preset, any_equal
from relay.sources.body import parse_json

if TYPE_CHECKING:
    from relay.sources.endpoint import Endpoint


class Jotform(Preset):
    name = "jotform"
    signed = True
    secret_env = "JOTFORM_TOKEN"
    content_types = ("multipart/form-data",)
    id = "body.submissionID"

    def parse(self, raw: bytes, content_type: str | None) -> Any:
        body = super().parse(raw, content_type)
        if isinstance(body, dict) and isinstance(body.get("rawRequest"), str):
            # Read as a JSON body is (nesting, NaN and numbers too large refused); what cannot
            # be read stays text, and the mapping's expressions will say what is missing.
            with contextlib.suppress(BodyError):
                body["rawRequest"] = parse_json(body["rawRequest"].encode())
        return body

    def check(self, secret: str, endpoint: Endpoint, inbound: Inbound, now: float) -> None:
        token = inbound.query.get("token")
        if not isinstance(token, str) or not token:
            raise SignatureError("no token query parameter")
        if not any_equal(secret, [token]):
            raise SignatureError("the token query parameter does not match")

    def sign(self, secret: str, endpoint: Endpoint, inbound: Inbound,
             now: float) -> tuple[dict[str, str], dict[str, str]]:
        return {}, {"token": secret}
