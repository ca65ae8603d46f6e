"""Cal.com, Webflow and Google Ads through the real intake, with the example mappings of
mappings/: a delivery signed as each sender signs it is stored and answered as the sender
expects; forged, stale and tampered ones are 401 with nothing stored; Google's key is never
stored."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from relay.sources.redact import REDACTED
from tests.conftest import MAPPINGS
from tests.support.admin_app import BEARER, TOKEN, serve_folder

EXAMPLES = MAPPINGS / "examples"
CAL_SECRET = "cal-webhook-secret-for-tests"
WEBFLOW_SECRET = "2b4acfd1c5518bf03c73a4889d197d77251353857c22694bf150b9e3402ba15f"
GOOGLE_KEY = "google-ads-key-for-tests-7Qz"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def served(tmp_path, monkeypatch):
    monkeypatch.setenv("CAL_WEBHOOK_SECRET", CAL_SECRET)
    monkeypatch.setenv("WEBFLOW_WEBHOOK_SECRET", WEBFLOW_SECRET)
    monkeypatch.setenv("GOOGLE_ADS_WEBHOOK_KEY", GOOGLE_KEY)
    monkeypatch.setenv("RELAY_ADMIN_TOKEN", TOKEN)
    app = serve_folder(MAPPINGS, tmp_path / "relay.db", capture_refresh=0,
                       admin_token=TOKEN)
    yield app
    app.store.dispose()


def cal_headers(raw: bytes, secret: str = CAL_SECRET) -> dict[str, str]:
    return {**JSON, "X-Cal-Signature-256": hmac.new(secret.encode(), raw,
                                                    hashlib.sha256).hexdigest()}


def webflow_headers(raw: bytes, stamp_ms: int | None = None,
                    secret: str = WEBFLOW_SECRET) -> dict[str, str]:
    stamp = str(int(time.time() * 1000) if stamp_ms is None else stamp_ms)
    signature = hmac.new(secret.encode(), stamp.encode() + b":" + raw,
                         hashlib.sha256).hexdigest()
    return {**JSON, "x-webflow-timestamp": stamp, "x-webflow-signature": signature}


def google_lead(example: str = "google-ads-lead.json", key: str | None = GOOGLE_KEY) -> bytes:
    body = json.loads((EXAMPLES / example).read_bytes())
    if key is None:
        del body["google_key"]
    else:
        body["google_key"] = key
    return json.dumps(body).encode()


class TestCalCom:
    def test_a_signed_booking_is_stored_and_deduplicated(self, served):
        """A booking signed with the webhook's secret: 202, one delivery to the attendee's
        phone; Cal.com's retry of it is a duplicate."""
        raw = (EXAMPLES / "cal-com-booking-created.json").read_bytes()
        http = served.client()
        answer = http.post("/hooks/cal-com-bookings", data=raw, headers=cal_headers(raw))
        assert answer.status_code == 202, answer.get_json()
        (event,) = served.store.events()
        assert served.store.event(event["id"])["deliveries"][0]["phone"] == "919876543210"
        again = http.post("/hooks/cal-com-bookings", data=raw, headers=cal_headers(raw))
        assert again.get_json()["status"] == "duplicate"
        assert len(served.store.events()) == 1

    @pytest.mark.parametrize("forgery", ["tampered", "other secret", "unsigned"])
    def test_forgeries_are_401_and_nothing_is_stored(self, served, forgery):
        raw = (EXAMPLES / "cal-com-booking-created.json").read_bytes()
        headers = {"tampered": cal_headers(raw), "other secret": cal_headers(raw, "x"),
                   "unsigned": {**JSON, "X-Cal-Signature-256": "no-secret-provided"}}[forgery]
        body = raw.replace(b"+919876543210", b"+919999999999") if forgery == "tampered" else raw
        answer = served.client().post("/hooks/cal-com-bookings", data=body, headers=headers)
        assert (answer.status_code, answer.get_json()) == (401, {"error": "invalid signature"})
        assert served.store.events() == []


class TestWebflow:
    def test_a_signed_submission_is_answered_200_and_stored(self, served):
        """Webflow retries anything but 200: the accepted submission is answered 200."""
        raw = (EXAMPLES / "webflow-form-submission.json").read_bytes()
        answer = served.client().post("/hooks/webflow-forms", data=raw,
                                      headers=webflow_headers(raw))
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["status"] == "accepted"
        (event,) = served.store.events()
        assert served.store.event(event["id"])["deliveries"][0]["phone"] == "919847011223"

    @pytest.mark.parametrize("forgery", ["stale", "tampered", "other secret", "no timestamp"])
    def test_stale_and_forged_are_401_and_nothing_is_stored(self, served, forgery):
        raw = (EXAMPLES / "webflow-form-submission.json").read_bytes()
        now_ms = int(time.time() * 1000)
        headers = {"stale": webflow_headers(raw, now_ms - 301_000),
                   "tampered": webflow_headers(raw),
                   "other secret": webflow_headers(raw, secret="client-secret-of-another-app"),
                   "no timestamp": {k: v for k, v in webflow_headers(raw).items()
                                    if k != "x-webflow-timestamp"}}[forgery]
        body = raw.replace(b"Kavya", b"Mallory") if forgery == "tampered" else raw
        answer = served.client().post("/hooks/webflow-forms", data=body, headers=headers)
        assert (answer.status_code, answer.get_json()) == (401, {"error": "invalid signature"})
        assert served.store.events() == []


class TestGoogleAds:
    def test_a_lead_is_answered_200_and_its_key_is_never_stored(self, served):
        """The lead with the mapping's key: 200, a delivery to columns.PHONE_NUMBER, and
        the stored event holds the body without google_key."""
        http = served.client()
        answer = http.post("/hooks/google-ads-leads", data=google_lead(), headers=JSON)
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["status"] == "accepted"
        (event,) = served.store.events()
        stored = served.store.event(event["id"])
        assert GOOGLE_KEY not in repr(stored)
        assert json.loads(stored["body"])["google_key"] == REDACTED
        assert stored["deliveries"][0]["phone"] == "919900122334"
        shown = http.get(f"/api/events/{event['id']}", headers=BEARER)
        assert shown.status_code == 200 and GOOGLE_KEY not in shown.get_data(as_text=True)
        again = http.post("/hooks/google-ads-leads", data=google_lead(), headers=JSON)
        assert (again.status_code, again.get_json()["status"]) == (200, "duplicate")

    def test_googles_test_data_is_200_and_skipped(self, served):
        """The form builder's "Send test data" (is_test: true) is green (200) and sends
        nothing."""
        raw = google_lead("google-ads-test-lead.json")
        answer = served.client().post("/hooks/google-ads-leads", data=raw, headers=JSON)
        assert (answer.status_code, answer.get_json()["status"]) == (200, "skipped")
        (event,) = served.store.events()
        assert served.store.event(event["id"])["deliveries"] == []

    @pytest.mark.parametrize("key", ["wrong-key", None, GOOGLE_KEY + " "])
    def test_a_wrong_or_missing_key_is_401_and_nothing_is_stored(self, served, key):
        answer = served.client().post("/hooks/google-ads-leads", data=google_lead(key=key),
                                      headers=JSON)
        assert (answer.status_code, answer.get_json()) == (401, {"error": "invalid signature"})
        assert served.store.events() == []

    def test_a_captured_lead_keeps_no_key_either(self, served):
        """A capture window's sample of a Google Ads lead (no mapping yet) is kept without
        its key."""
        http = served.client()
        opened = http.post("/api/capture/windows", json={"name": "new-ads"}, headers=BEARER)
        assert opened.status_code == 201, opened.get_json()
        answer = http.post("/hooks/new-ads", data=google_lead(), headers=JSON)
        assert answer.status_code == 200, answer.get_json()  # the detected preset answers
        sample = served.store.sample(answer.get_json()["sample_id"])
        assert GOOGLE_KEY.encode() not in sample["body"]
