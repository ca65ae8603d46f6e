"""Cal.com, Webflow and Google Ads (issue 15): each sender's documented recipe with a worked
vector, what each refuses, and what expressions see.

No official Python library signs as these senders (Cal.com signs in its own server code,
Webflow's `verifySignature` is in its JS SDK only, Google Ads signs nothing), so the vectors
were computed independently with openssl, as each comment shows.
"""

from __future__ import annotations

import json
import time

import pytest

from relay.errors import SignatureError
from relay.sources import PRESETS, Inbound, load_endpoint
from relay.sources.redact import REDACTED

CAL_SECRET = "cal-secret-0123"
# printf '%s' "$CAL_BODY" | openssl dgst -sha256 -hmac 'cal-secret-0123'
CAL_BODY = (b'{"triggerEvent":"BOOKING_CREATED","createdAt":"2026-11-20T09:41:07.512Z",'
            b'"payload":{"uid":"kQ8mWzV3yR7tN2pL5xJ9cB"}}')
CAL_SIGNATURE = "d76bcaec0b44c177a88cd07a21da62a4dc0d9034fa5e0fb05fdcf9d1d52fff40"

WEBFLOW_SECRET = "wf-secret-4567"
WEBFLOW_STAMP = "1763642116117"  # milliseconds
WEBFLOW_BODY = b'{"triggerType":"form_submission","payload":{"id":"6721ca84df3949bfc6752327"}}'
# printf '%s' "1763642116117:$WEBFLOW_BODY" | openssl dgst -sha256 -hmac 'wf-secret-4567'
WEBFLOW_SIGNATURE = "30839ca16f0b700ab7b05286552cb275c28c80228fb1c3bdfadecca4bb7f89a8"
WEBFLOW_NOW = int(WEBFLOW_STAMP) / 1000 + 10

GOOGLE_KEY = "k3y-typed-next-to-the-webhook-url"
LEAD = {"lead_id": "TeSter-123", "api_version": "1.0", "form_id": 40000000002,
        "campaign_id": 21000000003, "google_key": GOOGLE_KEY, "is_test": False,
        "user_column_data": [
            {"column_name": "Full Name", "string_value": "Farhan Qureshi",
             "column_id": "FULL_NAME"},
            {"column_name": "User Phone", "string_value": "+91 99001 22334",
             "column_id": "PHONE_NUMBER"},
            {"string_value": "again", "column_id": "PHONE_NUMBER"},
            {"column_name": "no id", "string_value": "x"}, "not a row"]}
JSON = {"content-type": "application/json"}


@pytest.fixture
def endpoint(write_mapping):
    def make(source, secret, extra=""):
        text = (f"source: {source}\nsecret: {json.dumps(secret)}\n{extra}"
                "phone: body.phone\nflows: [{flow_key: F}]\n")
        return load_endpoint(write_mapping(text, name="lead"), env={})

    return make


def inbound(raw, headers=None):
    return Inbound(raw, {**JSON, **(headers or {})}, {}, "POST", "https://relay.example/hooks/x")


def reason(endpoint, request, now):
    with pytest.raises(SignatureError) as info:
        endpoint.preset.verify(endpoint, request, now)
    return info.value.reason


class TestCalCom:
    def test_worked_vector_is_accepted(self, endpoint):
        """The hex HMAC-SHA256 of the raw body with the webhook's secret, as Cal.com's
        sendPayload.ts computes it, in X-Cal-Signature-256."""
        loaded = endpoint("cal-com", CAL_SECRET)
        loaded.preset.verify(loaded, inbound(CAL_BODY, {"x-cal-signature-256": CAL_SIGNATURE}),
                             time.time())

    @pytest.mark.parametrize(("raw", "signature", "why"), [
        (CAL_BODY + b" ", CAL_SIGNATURE, "does not match"),
        (CAL_BODY, "sha256=" + CAL_SIGNATURE, "does not match"),
        (CAL_BODY, "no-secret-provided", "does not match"),  # a webhook saved without a secret
        (CAL_BODY, None, "no x-cal-signature-256 header"),
    ])
    def test_tampered_prefixed_unsigned_and_missing_are_refused(self, endpoint, raw,
                                                                  signature, why):
        """A changed body, a prefix Cal.com does not send, the placeholder Cal.com sends
        without a secret, or no header: refused, saying why."""
        loaded = endpoint("cal-com", CAL_SECRET)
        headers = {} if signature is None else {"x-cal-signature-256": signature}
        assert why in reason(loaded, inbound(raw, headers), time.time())

    def test_dedup_key_is_trigger_and_uid_else_the_digest(self, endpoint):
        """triggerEvent + payload.uid; a payload without a uid falls back to the body's
        SHA-256."""
        loaded = endpoint("cal-com", CAL_SECRET)
        envelope = loaded.preset.envelope(CAL_BODY, JSON, {})
        assert loaded.mapping.id.search(envelope) == "BOOKING_CREATED kQ8mWzV3yR7tN2pL5xJ9cB"
        no_uid = b'{"triggerEvent":"OOO_CREATED","payload":{"oooEntry":{"id":1}}}'
        envelope = loaded.preset.envelope(no_uid, JSON, {})
        assert loaded.mapping.id.search(envelope) == envelope["digest"]

    def test_a_custom_template_posted_as_a_form_is_read(self, endpoint):
        """A payload template that is not JSON is posted form-urlencoded (sendPayload.ts)."""
        loaded = endpoint("cal-com", CAL_SECRET)
        envelope = loaded.preset.envelope(b"name=Asha&phone=%2B919812345678",
                                          {"content-type": "application/x-www-form-urlencoded"},
                                          {})
        assert envelope["body"] == {"name": "Asha", "phone": "+919812345678"}


class TestWebflow:
    def test_worked_vector_is_accepted(self, endpoint):
        """hex HMAC-SHA256 of "<x-webflow-timestamp>:<body>", as webflow-api's
        verifySignature computes it; the timestamp in milliseconds."""
        loaded = endpoint("webflow", WEBFLOW_SECRET)
        headers = {"x-webflow-signature": WEBFLOW_SIGNATURE,
                   "x-webflow-timestamp": WEBFLOW_STAMP}
        loaded.preset.verify(loaded, inbound(WEBFLOW_BODY, headers), WEBFLOW_NOW)

    def test_older_than_five_minutes_is_refused(self, endpoint):
        """The docs refuse a request older than 5 minutes: at 301 s it is stale."""
        loaded = endpoint("webflow", WEBFLOW_SECRET)
        headers = {"x-webflow-signature": WEBFLOW_SIGNATURE,
                   "x-webflow-timestamp": WEBFLOW_STAMP}
        stamp = int(WEBFLOW_STAMP) / 1000
        loaded.preset.verify(loaded, inbound(WEBFLOW_BODY, headers), stamp + 299)
        assert "timestamp is 301s off" in reason(loaded, inbound(WEBFLOW_BODY, headers),
                                                  stamp + 301)

    @pytest.mark.parametrize(("headers", "why"), [
        ({"x-webflow-signature": WEBFLOW_SIGNATURE, "x-webflow-timestamp": "1763642116118"},
         "does not match"),  # another timestamp: it is signed
        ({"x-webflow-signature": WEBFLOW_SIGNATURE, "x-webflow-timestamp": "1763642116"},
         "timestamp"),  # seconds where Webflow sends milliseconds: 55 years off
        ({"x-webflow-signature": WEBFLOW_SIGNATURE}, "no timestamp"),
        ({"x-webflow-timestamp": WEBFLOW_STAMP}, "no x-webflow-signature header"),
    ])
    def test_a_changed_or_missing_header_is_refused(self, endpoint, headers, why):
        loaded = endpoint("webflow", WEBFLOW_SECRET)
        assert why in reason(loaded, inbound(WEBFLOW_BODY, headers), WEBFLOW_NOW)

    def test_dedup_key_is_the_submission_id(self, endpoint):
        """form_submission: payload.id; another trigger: the body's SHA-256."""
        loaded = endpoint("webflow", WEBFLOW_SECRET)
        envelope = loaded.preset.envelope(WEBFLOW_BODY, JSON, {})
        assert loaded.mapping.id.search(envelope) == "6721ca84df3949bfc6752327"
        other = b'{"triggerType":"site_publish","payload":{"siteId":"65427cf4"}}'
        envelope = loaded.preset.envelope(other, JSON, {})
        assert loaded.mapping.id.search(envelope) == envelope["digest"]


class TestGoogleAds:
    def raw(self, **changes):
        return json.dumps({**LEAD, **changes}).encode()

    def test_the_key_in_the_body_is_the_credential(self, endpoint):
        """google_key equal to the mapping's secret is accepted; with two secrets (a
        rotation), either."""
        loaded = endpoint("google-ads", ["next-key", GOOGLE_KEY])
        loaded.preset.verify(loaded, inbound(self.raw()), time.time())

    @pytest.mark.parametrize(("raw", "why"), [
        (json.dumps({**LEAD, "google_key": GOOGLE_KEY + "x"}).encode(),
         "google_key does not match"),
        (json.dumps({**LEAD, "google_key": GOOGLE_KEY.upper()}).encode(), "does not match"),
        (json.dumps({k: v for k, v in LEAD.items() if k != "google_key"}).encode(),
         "no google_key in the body"),
        (json.dumps({**LEAD, "google_key": 12345}).encode(), "no google_key"),
        (json.dumps({**LEAD, "google_key": ""}).encode(), "no google_key"),
        (json.dumps([LEAD]).encode(), "no google_key"),
        (b"google_key=" + GOOGLE_KEY.encode(), "no google_key"),  # not JSON
        (b"\xff\xfe", "no google_key"),
    ])
    def test_a_wrong_missing_or_unreadable_key_is_refused(self, endpoint, raw, why):
        loaded = endpoint("google-ads", GOOGLE_KEY)
        assert why in reason(loaded, inbound(raw), time.time())

    def test_expressions_see_columns_by_id_and_never_the_key(self, endpoint):
        """`columns` holds each column's string_value by its id (the first of a repeated
        id); `body.google_key` is [redacted], as a replay of the stored body would see it."""
        loaded = endpoint("google-ads", GOOGLE_KEY)
        envelope = loaded.preset.envelope(self.raw(), JSON, {})
        assert envelope["columns"] == {"FULL_NAME": "Farhan Qureshi",
                                       "PHONE_NUMBER": "+91 99001 22334"}
        assert envelope["body"]["google_key"] == REDACTED
        assert GOOGLE_KEY not in json.dumps(envelope)
        assert loaded.mapping.id.search(envelope) == "TeSter-123"
        assert loaded.preset.envelope(b"[1]", JSON, {})["columns"] == {}

    def test_the_stored_body_has_no_key(self, endpoint):
        """What the store keeps is the body without google_key, and reads back the same
        for expressions."""
        preset = PRESETS["google-ads"]
        stored = preset.stored_body(self.raw())
        assert GOOGLE_KEY.encode() not in stored
        assert json.loads(stored) == {**LEAD, "google_key": REDACTED}
        assert preset.envelope(stored, JSON, {}) == preset.envelope(self.raw(), JSON, {})
        assert preset.stored_body(b"not json") == b"not json"

    def test_relay_send_puts_the_key_in_the_body(self, endpoint):
        """sign_body gives the body as Google posts it: the key the preset accepts."""
        loaded = endpoint("google-ads", GOOGLE_KEY)
        unsigned = json.dumps({k: v for k, v in LEAD.items() if k != "google_key"}).encode()
        signed = loaded.preset.sign_body(GOOGLE_KEY, loaded, unsigned)
        loaded.preset.verify(loaded, inbound(signed), time.time())
        assert json.loads(signed)["lead_id"] == "TeSter-123"
        assert loaded.preset.sign_body(GOOGLE_KEY, loaded, b"[]") == b"[]"


@pytest.mark.parametrize("source", ["webflow", "google-ads"])
def test_every_2xx_is_answered_200(source):
    """Webflow and Google Ads count anything but 200 as a failure: an accepted webhook
    (202) is answered 200; errors keep their status."""
    preset = PRESETS[source]
    assert preset.respond(202, {"status": "accepted"})[0] == 200
    assert preset.respond(401, {"error": "invalid signature"})[0] == 401
    assert preset.respond(503, {"error": "not ready"})[0] == 503


class TestEnvelopeKeys:
    def test_a_preset_declared_key_is_no_lint_warning(self, endpoint):
        """`columns.PHONE_NUMBER` is known to the linter under google-ads, and flagged as
        always null under a preset without it."""
        extra = "attributes: {name: columns.FULL_NAME}\n"
        assert endpoint("google-ads", GOOGLE_KEY, extra).mapping.warnings == ()
        (warning,) = endpoint("typeform", "s", extra).mapping.warnings
        assert "`columns` is not a key" in warning.message

    def test_digest_is_known_where_the_preset_gives_it(self, endpoint):
        """`digest` is a key of the envelope of presets that deduplicate by it."""
        assert endpoint("cal-com", CAL_SECRET, "id: digest\n").mapping.warnings == ()
        assert endpoint("typeform", "s", "id: digest\n").mapping.warnings != ()
