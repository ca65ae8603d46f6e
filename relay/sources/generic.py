"""Any sender that posts JSON or a form: verified as its mapping's `verify:` says.

    verify: {type: token, header: X-Relay-Token}        # or query: token
    verify: {type: basic}                               # secret is "user:password"
    verify: {type: hmac, header: X-Signature, algorithm: sha256, encoding: hex,
             prefix: "sha256=", signed: "{timestamp}.{body}",
             timestamp_header: X-Timestamp, tolerance: 300}

The options are checked and compiled into a `Verifier` once, when the mapping loads, not on
every request.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relay.errors import SignatureError
from relay.sources.base import HmacScheme, Inbound, Preset, any_equal

if TYPE_CHECKING:
    from relay.mapping.yamlfile import Report
    from relay.sources.endpoint import Endpoint

Signed = tuple[dict[str, str], dict[str, str]]  # the headers and query parameters a signer adds

_ALLOWED = {"token": {"header", "query"}, "basic": set(),
            "hmac": {"header", "algorithm", "encoding", "prefix", "signed", "timestamp_header",
                     "tolerance"}}


class Verifier:
    """One way of checking a secret, compiled from a mapping's `verify:` options."""

    @property
    def credentials(self) -> frozenset[str]:
        """Header and query parameter names (lower-cased) that carry the credential,
        whatever they are called: never stored or shown."""
        return frozenset()

    def check(self, secret: str, inbound: Inbound, now: float) -> None:
        """Raise SignatureError unless `secret` is what the request carries."""
        raise NotImplementedError

    def sign(self, secret: str, inbound: Inbound, now: float) -> Signed:
        """What the sender would add to the request."""
        raise NotImplementedError


@dataclass(frozen=True)
class Token(Verifier):
    """A shared token in a header (lower-cased) or in a query parameter."""

    name: str
    in_header: bool

    @property
    def credentials(self) -> frozenset[str]:
        return frozenset({self.name.lower()})

    def check(self, secret: str, inbound: Inbound, now: float) -> None:
        given = (inbound.headers.get(self.name.lower()) if self.in_header
                 else inbound.query.get(self.name))
        if not isinstance(given, str) or not given:
            raise SignatureError(f"no {self.name} token")
        if not any_equal(secret, [given]):
            raise SignatureError(f"the {self.name} token does not match")

    def sign(self, secret: str, inbound: Inbound, now: float) -> Signed:
        return ({self.name: secret}, {}) if self.in_header else ({}, {self.name: secret})


class Basic(Verifier):
    """HTTP basic authentication; the secret is `user:password`."""

    def check(self, secret: str, inbound: Inbound, now: float) -> None:
        auth = inbound.headers.get("authorization", "")
        if not auth.lower().startswith("basic "):
            raise SignatureError("no Authorization: Basic header")
        try:
            given = base64.b64decode(auth[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise SignatureError("malformed Authorization header") from None
        if not any_equal(secret, [given]):
            raise SignatureError("HTTP basic credentials do not match")

    def sign(self, secret: str, inbound: Inbound, now: float) -> Signed:
        return {"authorization": "Basic " + base64.b64encode(secret.encode()).decode()}, {}


@dataclass(frozen=True)
class Hmac(Verifier):
    """An HMAC in a header, as `scheme` describes it."""

    scheme: HmacScheme

    @property
    def credentials(self) -> frozenset[str]:
        return frozenset({self.scheme.header})

    def check(self, secret: str, inbound: Inbound, now: float) -> None:
        self.scheme.check(secret, inbound, now)

    def sign(self, secret: str, inbound: Inbound, now: float) -> Signed:
        return self.scheme.sign(secret, inbound, now), {}


class Generic(Preset):
    name = "generic"

    def validate(self, report: Report, data: dict[str, Any]) -> None:
        verify = data.get("verify")
        if isinstance(verify, dict):
            _check_options(report, verify, "secret" in data)
        elif "secret" in data and verify is None:
            report.add(("secret",), "say how to check it, e.g. verify: {type: token, header: "
                       "X-Relay-Token} (docs/sources.md lists the ways)")
        # verify options are this preset's key: the base refuses them for every other one.
        super().validate(report, {k: v for k, v in data.items() if k != "verify"})

    def verifier(self, data: dict[str, Any]) -> Verifier | None:
        options = data.get("verify")
        if not isinstance(options, dict):
            return None
        if options["type"] == "hmac":
            return Hmac(_scheme(options))
        if options["type"] == "basic":
            return Basic()
        in_header = "header" in options
        return Token(options["header"] if in_header else options["query"], in_header)

    def verifies(self, endpoint: Endpoint) -> bool:
        return isinstance(endpoint.verify, Verifier)  # generic verifies only when told how

    def check(self, secret: str, endpoint: Endpoint, inbound: Inbound, now: float) -> None:
        if isinstance(endpoint.verify, Verifier):
            endpoint.verify.check(secret, inbound, now)

    def sign(self, secret: str, endpoint: Endpoint, inbound: Inbound, now: float) -> Signed:
        if isinstance(endpoint.verify, Verifier):
            return endpoint.verify.sign(secret, inbound, now)
        return {}, {}


def _check_options(report: Report, verify: dict[str, Any], has_secret: bool) -> None:
    kind = verify["type"]
    for key in sorted(set(verify) - _ALLOWED[kind] - {"type"}):
        report.add(("verify", key), f"does not apply to type {kind}")
    if kind == "token" and ("header" in verify) == ("query" in verify):
        report.add(("verify",), "a token is in a header or a query parameter: give one of them")
    if kind == "hmac" and "header" not in verify:
        report.add(("verify",), "hmac needs the header that carries the signature")
    if "{timestamp}" in verify.get("signed", "") and "timestamp_header" not in verify:
        report.add(("verify", "signed"), "{timestamp} needs timestamp_header")
    if "timestamp_header" in verify and "{timestamp}" not in verify.get("signed", "{body}"):
        # An unsigned timestamp protects nothing: a replay with a fresh header would pass.
        report.add(("verify", "signed"), "with timestamp_header, the signed content must "
                   "include {timestamp}, e.g. signed: \"{timestamp}.{body}\"")
    if not has_secret:
        report.add(("verify",), "needs secret: the token, user:password or key to check")


def _scheme(options: dict[str, Any]) -> HmacScheme:
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
