"""Sender presets: a genuine delivery is accepted, forgeries are refused with a reason.

Where the provider publishes a library, it is the oracle: what it signs we accept, and what
we sign it accepts. Elsewhere the provider's documented example, or the documented recipe.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

import pytest

from relay.errors import BodyError, SignatureError
from relay.sources import PRESETS, Inbound, load_endpoint

SECRET = "s3cret-for-tests"
WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
BODY = json.dumps({"id": "evt_1", "object": "event", "phone": "+919812345678"}).encode()
URL = "https://relay.example.com/hooks/shop?x=1"


# What a preset needs beyond its secret for its mapping to load.
NEEDS = {"meta-lead-ads": "verify_token: vt\nlookup:\n  token: page-token\n"}


@pytest.fixture
def mapping(write_mapping):
    def make(source, secret=SECRET, extra=""):
        secret_line = f"secret: {json.dumps(secret)}\n" if secret is not None else ""
        if source in NEEDS:
            extra += NEEDS[source]
        text = (f"source: {source}\n{secret_line}{extra}"
                "phone: body.phone\nflows: [{flow_key: F}]\n")
        return load_endpoint(write_mapping(text, name="shop"), env={})

    return make


def inbound(headers=None, raw=BODY, query=None, url=URL):
    return Inbound(raw, {k.lower(): v for k, v in (headers or {}).items()}, query or {}, "POST",
                   url)


def refused(mapping, request, now=None) -> str:
    with pytest.raises(SignatureError) as info:
        mapping.preset.verify(mapping, request, now or time.time())
    assert str(info.value) == "invalid signature"
    return info.value.reason


def own_signature(mapping, raw=BODY, url=URL, now=None, secret=None):
    """The request as `relay send` would sign it (with the mapping's first secret)."""
    now = now or time.time()
    secret = secret or mapping.secrets[0]
    headers, query = mapping.preset.sign(secret, mapping, inbound(raw=raw, url=url), now)
    return inbound(headers, raw, query, url)


SIGNED = ["typeform", "stripe", "shopify", "razorpay", "hubspot", "tally", "calendly", "github",
          "jotform", "meta-lead-ads", "woocommerce", "cashfree", "cal-com", "webflow"]
# google-ads: the key is in the body (test_lead_presets)


class TestEveryPreset:
    @pytest.mark.parametrize("source", SIGNED)
    def test_own_signature_round_trips(self, mapping, source):
        """What `relay send` signs, the preset accepts."""
        loaded = mapping(source)
        loaded.preset.verify(loaded, own_signature(loaded), time.time())

    @pytest.mark.parametrize("source", SIGNED)
    def test_tampered_body_wrong_secret_and_no_signature_are_refused(self, mapping, source):
        """A changed body, another secret or no signature at all: 401 with a reason."""
        loaded = mapping(source)
        good = own_signature(loaded)
        if source != "jotform":  # Jotform signs nothing: its token is in the URL
            refused(loaded, inbound(good.headers, BODY + b" ", good.query))
        refused(loaded, own_signature(loaded, secret="another"))
        assert refused(loaded, inbound())

    @pytest.mark.parametrize("source", SIGNED)
    @pytest.mark.parametrize("garbage", ["", "=", "t=", "t=abc,v1=", "v1,", "sha256=zz", "é" * 300,
                                         "t=1,t=2,v1=x", ",,,,", "\x00"])
    def test_malformed_headers_are_refused_never_crash(self, mapping, source, garbage):
        """Any garbage in any signature header is a SignatureError, never another error."""
        loaded = mapping(source)
        names = set(own_signature(loaded).headers) | {"webhook-signature", "webhook-id",
                                                        "webhook-timestamp"}
        refused(loaded, inbound({name: garbage for name in names}, query={"token": garbage}))

    def test_a_second_secret_works_during_rotation(self, mapping):
        """With a list of secrets, a delivery signed by any of them is accepted."""
        loaded = mapping("typeform", secret=["new-secret", SECRET])
        loaded.preset.verify(loaded, own_signature(loaded), time.time())

    def test_verify_false_accepts_unsigned(self, mapping):
        """verify: false turns verification off, explicitly."""
        loaded = mapping("typeform", secret=None, extra="verify: false\n")
        loaded.preset.verify(loaded, inbound(), time.time())

    def test_every_preset_is_known(self):
        """The presets named in the design all exist."""
        assert set(PRESETS) == {"generic", "typeform", "stripe", "salesforce", "shopify",
                                "razorpay", "hubspot", "standard-webhooks", "tally", "calendly",
                                "github", "jotform", "meta-lead-ads", "woocommerce",
                                "cashfree", "cal-com", "webflow", "google-ads"}


class TestOracles:
    def test_stripe_library_signature_is_accepted(self, mapping):
        """stripe-python's test signer produces a header we accept; stale ones are refused."""
        stripe = pytest.importorskip("stripe")
        loaded = mapping("stripe", secret="whsec_test_secret")
        header = stripe.WebhookSignature.generate_signature_header(BODY.decode(),
                                                                    "whsec_test_secret")
        loaded.preset.verify(loaded, inbound({"Stripe-Signature": header}), time.time())
        old = stripe.WebhookSignature.generate_signature_header(
            BODY.decode(), "whsec_test_secret", timestamp=int(time.time()) - 301)
        assert "timestamp" in refused(loaded, inbound({"Stripe-Signature": old}))

    def test_stripe_library_accepts_our_signature(self, mapping):
        """stripe-python verifies what we sign."""
        stripe = pytest.importorskip("stripe")
        loaded = mapping("stripe", secret="whsec_test_secret")
        signed = own_signature(loaded)
        stripe.WebhookSignature.verify_header(BODY.decode(), signed.headers["stripe-signature"],
                                              "whsec_test_secret", tolerance=300)

    @pytest.mark.parametrize("library", ["standardwebhooks", "svix"])
    def test_standard_webhooks_and_svix(self, mapping, library):
        """The Standard Webhooks and Svix libraries' signatures are accepted, and ours by them."""
        module = pytest.importorskip(library if library == "svix" else "standardwebhooks")
        webhook = module.webhooks.Webhook(WHSEC) if library == "svix" else module.Webhook(WHSEC)
        loaded = mapping("standard-webhooks", secret=WHSEC)
        now = datetime.now(UTC)
        signature = webhook.sign("msg_1", now, BODY.decode())
        prefix = "svix" if library == "svix" else "webhook"
        headers = {f"{prefix}-id": "msg_1", f"{prefix}-timestamp": str(int(now.timestamp())),
                   f"{prefix}-signature": f"v0,xyz {signature}"}
        loaded.preset.verify(loaded, inbound(headers), time.time())
        assert "timestamp" in refused(loaded, inbound(headers), now=time.time() + 400)
        ours = own_signature(loaded).headers
        if library == "svix":
            ours = {k.replace("webhook-", "svix-"): v for k, v in ours.items()}
        webhook.verify(BODY, ours)

    def test_razorpay_library_accepts_our_signature(self, mapping):
        """razorpay-python's verifier accepts what we sign."""
        razorpay = pytest.importorskip("razorpay")
        loaded = mapping("razorpay")
        signature = own_signature(loaded).headers["x-razorpay-signature"]
        utility = razorpay.Client(auth=("key", "secret")).utility
        assert utility.verify_webhook_signature(BODY.decode(), signature, SECRET)

    def test_hubspot_v3_library_signature_and_url(self, mapping):
        """hubspot-api-client's v3 signature is accepted for its URL, refused for another."""
        signature_module = pytest.importorskip("hubspot.utils.signature")
        loaded = mapping("hubspot")
        stamp = str(int(time.time() * 1000))
        signature = signature_module.Signature.get_signature(
            SECRET, BODY.decode(), "v3", http_uri=URL, http_method="POST", timestamp=stamp)
        headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp}
        loaded.preset.verify(loaded, inbound(headers), time.time())
        assert "does not match" in refused(loaded, inbound(headers, url=URL + "&y=2"))
        old = str(int((time.time() - 400) * 1000))
        headers["X-HubSpot-Request-Timestamp"] = old
        assert "timestamp" in refused(loaded, inbound(headers))

    def test_hubspot_library_accepts_our_v3_signature(self, mapping):
        """hubspot-api-client validates what we sign."""
        signature_module = pytest.importorskip("hubspot.utils.signature")
        loaded = mapping("hubspot")
        signed = own_signature(loaded).headers
        assert signature_module.Signature.is_valid(
            signed["x-hubspot-signature-v3"], SECRET, BODY.decode(), http_uri=URL,
            signature_version="v3", timestamp=signed["x-hubspot-request-timestamp"])

    @pytest.mark.parametrize("version", ["v1", "v2"])
    def test_hubspot_legacy_signatures_only_where_the_mapping_opts_in(self, mapping, version):
        """X-HubSpot-Signature (v1, v2) is accepted with legacy_signatures: true, and refused
        by default: SHA-256 over secret + content can be extended, and has no timestamp."""
        signature_module = pytest.importorskip("hubspot.utils.signature")
        signature = signature_module.Signature.get_signature(SECRET, BODY.decode(), version,
                                                             http_uri=URL)
        headers = {"X-HubSpot-Signature": signature, "X-HubSpot-Signature-Version": version}
        opted_in = mapping("hubspot", extra="legacy_signatures: true\n")
        opted_in.preset.verify(opted_in, inbound(headers), time.time())
        default = mapping("hubspot")
        assert "legacy_signatures" in refused(default, inbound(headers))

    def test_github_documented_example(self, mapping):
        """GitHub's documentation: secret "It's a Secret to Everybody", body "Hello, World!"."""
        loaded = mapping("github", secret="It's a Secret to Everybody")
        signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        loaded.preset.verify(loaded, inbound({"X-Hub-Signature-256": signature},
                                             raw=b"Hello, World!"), time.time())

    @pytest.mark.parametrize(("source", "header", "encoding", "prefix"), [
        ("typeform", "Typeform-Signature", "base64", "sha256="),
        ("shopify", "X-Shopify-Hmac-Sha256", "base64", ""),
        ("tally", "Tally-Signature", "base64", ""),
        ("razorpay", "X-Razorpay-Signature", "hex", ""),
        ("meta-lead-ads", "X-Hub-Signature-256", "hex", "sha256="),
        ("woocommerce", "X-WC-Webhook-Signature", "base64", ""),
        ("cal-com", "X-Cal-Signature-256", "hex", ""),
    ])
    def test_documented_recipes(self, mapping, source, header, encoding, prefix):
        """Body HMACs computed as each provider's documentation describes are accepted."""
        digest = hmac.new(SECRET.encode(), BODY, hashlib.sha256).digest()
        value = prefix + (base64.b64encode(digest).decode() if encoding == "base64"
                          else digest.hex())
        loaded = mapping(source)
        loaded.preset.verify(loaded, inbound({header: value}), time.time())

    def test_calendly_recipe_and_tolerance(self, mapping):
        """Calendly: t=<s>,v1=<hex of "t.body">, refused after 3 minutes."""
        loaded = mapping("calendly")
        stamp = int(time.time())
        v1 = hmac.new(SECRET.encode(), f"{stamp}.".encode() + BODY, hashlib.sha256).hexdigest()
        headers = {"Calendly-Webhook-Signature": f"t={stamp},v1={v1}"}
        loaded.preset.verify(loaded, inbound(headers), time.time())
        assert "timestamp" in refused(loaded, inbound(headers), now=stamp + 181)


class TestGeneric:
    def test_token_in_a_header_or_the_query(self, mapping):
        """A shared token is compared in constant time, from a header or a query parameter."""
        header = mapping("generic", extra="verify: {type: token, header: X-Relay-Token}\n")
        header.preset.verify(header, inbound({"X-Relay-Token": SECRET}), 0)
        assert refused(header, inbound({"X-Relay-Token": "nope"})) == (
            "the X-Relay-Token token does not match")
        query = mapping("generic", extra="verify: {type: token, query: key}\n")
        query.preset.verify(query, inbound(query={"key": SECRET}), 0)
        assert refused(query, inbound(query={"key": ["a", "b"]})) == "no key token"

    def test_basic(self, mapping):
        """HTTP basic: the secret is user:password."""
        loaded = mapping("generic", secret="crm:pw", extra="verify: {type: basic}\n")
        good = "Basic " + base64.b64encode(b"crm:pw").decode()
        loaded.preset.verify(loaded, inbound({"Authorization": good}), 0)
        refused(loaded, inbound({"Authorization": "Basic !!!"}))
        refused(loaded, inbound({"Authorization": "Bearer x"}))

    def test_hmac_with_timestamp(self, mapping):
        """A configurable HMAC: header, algorithm, encoding, prefix, signed content, tolerance."""
        loaded = mapping("generic", extra=(
            "verify: {type: hmac, header: X-Sig, algorithm: sha512, encoding: base64, "
            "prefix: 'v1=', signed: '{timestamp}:{body}', timestamp_header: X-Ts, "
            "tolerance: 60}\n"))
        now = time.time()
        stamp = str(int(now))
        digest = hmac.new(SECRET.encode(), f"{stamp}:".encode() + BODY, hashlib.sha512).digest()
        headers = {"X-Sig": "v1=" + base64.b64encode(digest).decode(), "X-Ts": stamp}
        loaded.preset.verify(loaded, inbound(headers), now)
        assert "timestamp" in refused(loaded, inbound(headers), now=now + 61)
        loaded.preset.verify(loaded, own_signature(loaded, now=now), now)

    def test_no_verify_accepts_anything(self, mapping):
        """Without verify:, generic checks nothing (and relay check warns)."""
        loaded = mapping("generic", secret=None)
        loaded.preset.verify(loaded, inbound(), 0)


class TestParsing:
    def test_jotform_raw_request_is_decoded(self, mapping):
        """Jotform's multipart rawRequest field becomes an object."""
        loaded = mapping("jotform")
        raw = (b'--XX\r\nContent-Disposition: form-data; name="submissionID"\r\n\r\n5823\r\n'
               b'--XX\r\nContent-Disposition: form-data; name="rawRequest"\r\n\r\n'
               b'{"q3_phone":{"full":"(981) 234-5678"}}\r\n--XX--\r\n')
        envelope = loaded.preset.envelope(raw, {"Content-Type": "multipart/form-data; boundary=XX"},
                                          {})
        assert envelope["body"] == {"submissionID": "5823",
                                    "rawRequest": {"q3_phone": {"full": "(981) 234-5678"}}}

    @pytest.mark.parametrize("text", ["[" * 100_000, '{"a": NaN}', "{not json"])
    def test_jotform_raw_request_that_cannot_be_read_stays_text(self, mapping, text):
        """Nested too deep (json.loads raised RecursionError: a 500), NaN (which no JSON
        column stores) or not JSON: rawRequest stays the text it came as."""
        loaded = mapping("jotform")
        raw = (b'--XX\r\nContent-Disposition: form-data; name="rawRequest"\r\n\r\n'
               + text.encode() + b"\r\n--XX--\r\n")
        envelope = loaded.preset.envelope(raw, {"Content-Type": "multipart/form-data; boundary=XX"},
                                          {})
        assert envelope["body"] == {"rawRequest": text}

    def test_xml_with_entities_is_refused(self, mapping):
        """DTDs and entities (billion laughs, external entities) are refused."""
        loaded = mapping("salesforce", secret=None, extra="organization_id: 00D000000000001AAA\n")
        bomb = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]>'
                b"<l>&b;</l>")
        with pytest.raises(BodyError, match="DTD or entities"):
            loaded.preset.envelope(bomb, {"Content-Type": "text/xml"}, {})

