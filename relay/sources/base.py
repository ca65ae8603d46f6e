"""The preset contract, and the HMAC schemes most senders share.

A preset takes the `Endpoint` it serves (relay/sources/endpoint.py) for what a mapping file
says about its sender: the secrets, the verify options compiled at load, the organizations.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from relay.errors import BodyError, SignatureError
from relay.mapping import Mapping, Result, evaluate
from relay.sources.body import media_type, parse_body

if TYPE_CHECKING:
    from relay.mapping.yamlfile import Report
    from relay.sources.endpoint import Endpoint
    from relay.sources.generic import Verifier


@dataclass(frozen=True)
class Inbound:
    """A webhook request as received: raw bytes, lower-cased headers, the public URL."""

    raw: bytes
    headers: dict[str, str]
    query: dict[str, Any] = field(default_factory=dict)
    method: str = "POST"
    url: str = ""


class Preset:
    """A sender. The base parses JSON, forms and XML and signs nothing."""

    name = "generic"
    signed = False  # a mapping needs `secret:` (or an explicit `verify: false`)
    secret_env: str | None = None  # the environment variable the docs suggest for the secret
    verify_token_env: str | None = None  # ... and for `verify_token:`, where there is one
    id: str | None = None  # default `id` expression
    each: str | None = None  # default `each` expression
    # The media types the sender posts; anything else is 415, so that a body is never read
    # in a way its sender did not mean (a forged multipart preamble, say). None: every type
    # parse_body reads (JSON, forms, multipart, XML), for senders we know nothing about.
    content_types: tuple[str, ...] | None = None
    # Senders that sign the body alone and carry their event id in a header nobody signs
    # (Shopify, Razorpay, GitHub): a captured request replayed with another id would be new.
    # Their envelopes get `digest`, the hex SHA-256 of the raw body, as the default `id`:
    # only what was signed picks the key.
    body_digest = False
    methods: tuple[str, ...] = ("POST",)  # and GET where `handshake` answers one (Meta)
    # Defaults for the keys of a file's `lookup:` (relay/lookup): senders whose webhooks only
    # name an object say where it is read (Meta: the lead, from the Graph API).
    lookup: ClassVar[dict[str, Any] | None] = None
    # For `relay draft`: the lookup token's variable, where the phone is in the answer, and
    # an answer shaped as the sender's (the draft's test takes it).
    lookup_draft: ClassVar[dict[str, Any] | None] = None
    # Senders that count only 200 itself as delivered (WooCommerce's ping refuses a 202;
    # Cashfree retries whatever "doesn't return HTTP 200"; Meta, Webflow and Google Ads want
    # 200 too): every 2xx answer goes out as 200.
    only_200 = False
    # Keys the preset's envelopes have besides body, headers and query (and `digest`), so
    # that the mapping linter knows them: google-ads' `columns`.
    envelope_keys: tuple[str, ...] = ()

    def parse(self, raw: bytes, content_type: str | None) -> Any:
        return parse_body(raw, content_type)

    def envelope(self, raw: bytes, headers: dict[str, str],
                 query: dict[str, Any]) -> dict[str, Any]:
        """The value expressions see: `{body, headers, query}`, header names lower-cased."""
        lowered = {k.lower(): v for k, v in headers.items()}
        content_type = lowered.get("content-type")
        if self.content_types is not None and media_type(content_type) not in self.content_types:
            raise BodyError(
                f"{self.name} sends {' or '.join(self.content_types)}, not "
                f"{media_type(content_type) or '(no Content-Type)'}", 415,
                f"post the body with Content-Type: {self.content_types[0]}, or use a mapping "
                "whose source sends this type (source: generic reads JSON, forms and XML)")
        envelope = {"body": self.parse(raw, content_type), "headers": lowered, "query": query}
        if self.body_digest:
            envelope["digest"] = hashlib.sha256(raw).hexdigest()
        return envelope

    def validate(self, report: Report, data: dict[str, Any]) -> None:
        """Report what a mapping file says wrong about this sender (`data`: its keys).

        The base refuses the keys that belong to one preset (generic's verify options,
        HubSpot's legacy_signatures): a preset that owns one takes it out of `data` before
        calling this. A signed sender needs its secret.
        """
        verify = data.get("verify")
        if isinstance(verify, dict):
            report.add(("verify",), f"verify options are for source: generic; {self.name} is "
                       "verified its own way (verify: false turns that off)")
        if self.signed and verify is not False and "secret" not in data:
            report.add(("source",), f"{self.name} signs its webhooks: add secret: "
                       f"${{{self.secret_env}}}, or verify: false to accept unsigned ones")
        if "legacy_signatures" in data:
            report.add(("legacy_signatures",), "only source: hubspot has legacy signatures")

    def verifier(self, data: dict[str, Any]) -> Verifier | None:
        """The file's verify options compiled once, at load (generic's); None: the preset's
        own way."""
        return None

    def verifies(self, endpoint: Endpoint) -> bool:
        """Whether requests for `endpoint` are verified at all."""
        return self.signed and endpoint.verify is not False

    def verify(self, endpoint: Endpoint, inbound: Inbound, now: float) -> None:
        """Raise SignatureError unless the request comes from the sender (raw bytes only).

        Each of the endpoint's secrets is tried, so that a rotation needs no downtime.
        """
        if not self.verifies(endpoint) or self.unsigned(inbound):
            return
        reasons = []
        for secret in endpoint.secrets:
            try:
                self.check(secret, endpoint, inbound, now)
                return
            except SignatureError as exc:
                reasons.append(exc.reason)
        raise SignatureError(reasons[0] if len(set(reasons)) == 1 else "; ".join(reasons))

    def check(self, secret: str, endpoint: Endpoint, inbound: Inbound, now: float) -> None:
        """Raise SignatureError unless `secret` signed this request."""

    def unsigned(self, inbound: Inbound) -> bool:
        """Whether this is a request the sender sends with no signature at all, to be let in
        unverified (WooCommerce's ping when a webhook is saved). Such a request must plan
        nothing (`evaluate` skips it, whatever the mapping says), and the intake counts it
        against RELAY_UNVERIFIED_LIMIT like a webhook to an endpoint that verifies nothing."""
        return False

    def admit(self, endpoint: Endpoint, envelope: dict[str, Any]) -> None:
        """Checks that need the parsed body (Salesforce's OrganizationId)."""

    def evaluate(self, mapping: Mapping, envelope: dict[str, Any], raw: bytes,
                 now: float | None = None) -> Result:
        """The mapping applied to the envelope of a webhook that arrived at `now`; a preset
        may answer for the mapping first (WooCommerce's ping is skipped before any
        expression runs)."""
        return evaluate(mapping, envelope, now)
    def stored_body(self, raw: bytes) -> bytes:
        """The body as the store keeps it: a sender whose credential travels in the body
        (Google Ads' google_key) has it taken out, as headers' credentials are redacted."""
        return raw

    def sign_body(self, secret: str, endpoint: Endpoint, raw: bytes) -> bytes:
        """The body as the sender would post it, for `relay send`: a sender whose
        credential travels in the body (Google Ads) puts it there."""
        return raw

    def sign(self, secret: str, endpoint: Endpoint, inbound: Inbound,
             now: float) -> tuple[dict[str, str], dict[str, str]]:
        """Headers and query parameters the sender would add: for `relay send` and tests."""
        return {}, {}

    def handshake(self, endpoint: Endpoint,
                  query: dict[str, Any]) -> tuple[int, bytes, str] | None:
        """The answer to a GET of the endpoint, for senders that check a URL that way before
        they post to it (Meta); None: the endpoint takes POST only (405)."""
        return None

    def looked_up(self, answer: Any) -> Any:
        """A lookup's JSON answer as the mapping's expressions see it."""
        return answer

    def lookup_retryable(self, status: int, answer: Any) -> bool:
        """Whether a lookup answered `status` (not 2xx) with `answer` (its JSON, or None) may
        succeed later: the server's trouble or a rate limit, unlike a refusal."""
        return status in (408, 425, 429) or status >= 500

    def respond(self, status: int, answer: dict[str, Any]) -> tuple[int, bytes, str]:
        """The HTTP answer: (status, body, content type)."""
        if self.only_200 and 200 <= status < 300:
            status = 200
        return status, json.dumps(answer).encode(), "application/json"


def hmac_digest(algorithm: str, key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, getattr(hashlib, algorithm)).digest()


def encode(digest: bytes, encoding: str) -> str:
    return base64.b64encode(digest).decode() if encoding == "base64" else digest.hex()


def any_equal(expected: str, candidates: Iterable[str]) -> bool:
    """Constant-time comparison against each candidate."""
    return any(hmac.compare_digest(expected.encode(), c.strip().encode()) for c in candidates)


def check_age(timestamp: str | None, now: float, tolerance: float, unit: float = 1.0) -> float:
    """The timestamp as seconds, or SignatureError when missing, malformed or out of tolerance."""
    if not timestamp:
        raise SignatureError("no timestamp")
    try:
        seconds = float(timestamp) * unit
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):  # nan compares false with everything: it would pass
        raise SignatureError(f"malformed timestamp {timestamp[:40]!r}")
    if abs(now - seconds) > tolerance:
        raise SignatureError(f"timestamp is {now - seconds:.0f}s off (tolerance {tolerance:.0f}s)")
    return seconds


@dataclass(frozen=True)
class HmacScheme:
    """An HMAC of some content, in one header: the shape most senders use.

    `signed` is the signed content: `{body}` (the raw bytes), `{timestamp}` (from
    `timestamp_header`, counted in `timestamp_unit` seconds: 0.001 for milliseconds),
    `{method}` and `{url}`.
    """

    header: str
    algorithm: str = "sha256"
    encoding: str = "hex"
    prefix: str = ""
    signed: str = "{body}"
    timestamp_header: str | None = None
    tolerance: float | None = None
    timestamp_unit: float = 1.0

    def signature(self, secret: str, inbound: Inbound, timestamp: str) -> str:
        head, _, tail = (self.signed.replace("{timestamp}", timestamp)
                         .replace("{method}", inbound.method).replace("{url}", inbound.url)
                         .partition("{body}"))
        message = head.encode() + (inbound.raw if _ else b"") + tail.encode()
        return self.prefix + encode(hmac_digest(self.algorithm, secret.encode(), message),
                                    self.encoding)

    def check(self, secret: str, inbound: Inbound, now: float) -> None:
        given = inbound.headers.get(self.header)
        if not given:
            raise SignatureError(f"no {self.header} header")
        timestamp = ""
        if self.timestamp_header:
            timestamp = inbound.headers.get(self.timestamp_header, "")
            if self.tolerance is not None:
                check_age(timestamp, now, self.tolerance, self.timestamp_unit)
        if not any_equal(self.signature(secret, inbound, timestamp), [given]):
            raise SignatureError(f"{self.header} does not match")

    def sign(self, secret: str, inbound: Inbound, now: float) -> dict[str, str]:
        headers = {}
        timestamp = ""
        if self.timestamp_header:
            timestamp = str(int(now / self.timestamp_unit))
            headers[self.timestamp_header] = timestamp
        headers[self.header] = self.signature(secret, inbound, timestamp)
        return headers


class HmacPreset(Preset):
    """A sender whose signature is one HmacScheme over the raw body."""

    signed = True
    content_types: tuple[str, ...] | None = ("application/json",)
    scheme: HmacScheme

    def check(self, secret: str, endpoint: Endpoint, inbound: Inbound, now: float) -> None:
        self.scheme.check(secret, inbound, now)

    def sign(self, secret: str, endpoint: Endpoint, inbound: Inbound,
             now: float) -> tuple[dict[str, str], dict[str, str]]:
        return self.scheme.sign(secret, inbound, now), {}


class TimestampedPreset(Preset):
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">` (Stripe, Calendly)."""

    signed = True
    content_types = ("application/json",)
    header: str
    tolerance: float

    def check(self, secret: str, endpoint: Endpoint, inbound: Inbound, now: float) -> None:
        value = inbound.headers.get(self.header)
        if not value:
            raise SignatureError(f"no {self.header} header")
        pairs = [part.partition("=") for part in value.split(",")]
        stamps = [v.strip() for k, _, v in pairs if k.strip() == "t"]
        signatures = [v for k, _, v in pairs if k.strip() == "v1"]
        if len(stamps) != 1 or not signatures:
            raise SignatureError(f"malformed {self.header} header")
        check_age(stamps[0], now, self.tolerance)
        if not any_equal(self._signature(secret, stamps[0], inbound.raw), signatures):
            raise SignatureError(f"no v1 signature in {self.header} matches")

    def sign(self, secret: str, endpoint: Endpoint, inbound: Inbound,
             now: float) -> tuple[dict[str, str], dict[str, str]]:
        stamp = str(int(now))
        return {self.header: f"t={stamp},v1={self._signature(secret, stamp, inbound.raw)}"}, {}

    @staticmethod
    def _signature(secret: str, stamp: str, raw: bytes) -> str:
        return hmac_digest("sha256", secret.encode(), stamp.encode() + b"." + raw).hex()
