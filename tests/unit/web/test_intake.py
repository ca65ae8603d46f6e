"""POST /hooks/<name>: every answer a sender can get, and what is stored behind it; and
signed senders over HTTP with the example mappings: 401 for forgeries, 503 while a secret is
missing, SOAP for Salesforce, and the public URL HubSpot signs."""

from __future__ import annotations

import json
import logging
import sqlite3
import time

import pytest

from relay.config import Settings
from relay.sources import Inbound, load_endpoint
from relay.sources.registry import Registry
from relay.store import open_store
from relay.web.app import create_app
from tests.conftest import MAPPINGS

LEADS = """
id: body.id
filter: body.type != 'ping'
phone: {path: body.phone, region: IN}
attributes:
  name: body.name
  email: {path: body.email, required: true}
flows: [{flow_key: F}]
"""
BATCH = """
each: body.items
id: item.id
phone: item.phone
flows: [{flow_key: B}]
"""


@pytest.fixture
def relay(tmp_path, write_mapping):
    write_mapping(LEADS, name="leads")
    folder = write_mapping(BATCH, name="batch").parent
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    settings = Settings(database_url=url, mappings=str(folder), max_body=2048, db_timeout=0.2)
    store = open_store(url, timeout=0.2)
    store.upgrade()
    registry = Registry(folder)
    registry.load()
    app = create_app(settings, store=store, registry=registry)
    return app.test_client(), store, tmp_path / "relay.db"


def post(client, name="leads", body=None, **kwargs):
    kwargs.setdefault("json", body)
    return client.post(f"/hooks/{name}", **kwargs)


LEAD = {"id": "L1", "phone": "9812345678", "name": "Asha", "email": "a@example.com"}


class TestAnswers:
    def test_accepted(self, relay):
        """202 with the event id and the number of deliveries, once stored."""
        client, store, _ = relay
        response = post(client, body=LEAD)
        assert response.status_code == 202
        answer = response.get_json()
        assert answer == {"status": "accepted", "event_id": answer["event_id"], "deliveries": 1}
        assert store.event(answer["event_id"])["deliveries"][0]["phone"] == "919812345678"
        assert "Set-Cookie" not in response.headers  # sessions are the console's alone

    def test_duplicate(self, relay):
        """The same id again: 200 duplicate with the first event id."""
        client, _, _ = relay
        first = post(client, body=LEAD).get_json()["event_id"]
        again = post(client, body=LEAD)
        assert (again.status_code, again.get_json()) == (
            200, {"status": "duplicate", "event_id": first})

    def test_skipped(self, relay):
        """The filter says no: 200 skipped, and the event is recorded."""
        client, store, _ = relay
        response = post(client, body={"type": "ping"})
        assert response.status_code == 200
        assert response.get_json()["status"] == "skipped"
        assert store.events(status="skipped")[0]["id"] == response.get_json()["event_id"]

    def test_unmappable_is_422_with_every_field_and_stored(self, relay):
        """No phone, no email: 422 naming both; the event is kept for replay."""
        client, store, _ = relay
        response = post(client, body={"id": "L9", "name": "Asha"})
        assert response.status_code == 422
        answer = response.get_json()
        assert [e["field"] for e in answer["errors"]] == ["phone", "attributes.email"]
        assert "relay replay" in answer["hint"]
        assert store.event(answer["event_id"])["status"] == "failed"
        assert post(client, body={"id": "L8"}).status_code == 422  # another id: stored too

    def test_resent_failed_and_skipped_events_are_stored_once(self, relay):
        """A sender's resends of a webhook that failed or was skipped are answered as
        duplicates of the first, on the same key as accepted ones: 30 posts, one row each."""
        client, store, _ = relay
        failed = [post(client, body={"id": "L9", "name": "Asha"}) for _ in range(30)]
        skipped = [post(client, body={"id": "P1", "type": "ping"}) for _ in range(30)]
        for answers, first_status in ((failed, 422), (skipped, 200)):
            first = answers[0].get_json()["event_id"]
            assert answers[0].status_code == first_status
            assert {(a.status_code, a.get_json()["status"], a.get_json()["event_id"])
                    for a in answers[1:]} == {(200, "duplicate", first)}
        assert len(store.events(status="failed")) == 1
        assert len(store.events(status="skipped")) == 1

    def test_batch_with_a_bad_item(self, relay):
        """Good items are accepted; the bad one is named in the 202."""
        client, _, _ = relay
        response = post(client, "batch", {"items": [{"id": 1, "phone": "+919812345678"},
                                                    {"id": 2}]})
        assert response.status_code == 202
        answer = response.get_json()
        assert answer["deliveries"] == 1
        assert answer["errors"] == [{"field": "each[1].phone", "message": "no value at item.phone"}]

    def test_form_body(self, relay):
        """A form-encoded body is read as an object of strings."""
        client, _, _ = relay
        response = post(client, body=None, data={"id": "F1", "phone": "9812345678",
                                                  "email": "a@b.c"})
        assert response.status_code == 202


class TestRefusals:
    def test_unknown_mapping(self, relay):
        """404 says which file would serve the endpoint, never with the machine's path."""
        response = post(relay[0], "nope", LEAD)
        assert response.status_code == 404
        assert response.get_json()["error"] == "no mapping named 'nope'"
        assert response.get_json()["hint"] == (
            "add nope.yaml in the mappings folder to serve /hooks/nope")
        assert "/tmp" not in response.get_data(as_text=True)

    def test_too_large(self, relay):
        """A body over RELAY_MAX_BODY is 413 and nothing is stored."""
        client, store, _ = relay
        response = post(client, body={"pad": "x" * 4096, **LEAD})
        assert response.status_code == 413
        assert "larger than 2048 bytes" in response.get_json()["error"]
        assert store.events() == []

    def test_invalid_json(self, relay):
        """Invalid JSON is 400 with the position."""
        response = post(relay[0], body=None, data=b'{"id": ', content_type="application/json")
        assert response.status_code == 400
        assert response.get_json()["error"].startswith("the body is not valid JSON")

    def test_invalid_utf8(self, relay):
        """Bytes that are not UTF-8 are 400, not 500."""
        response = post(relay[0], body=None, data=b'{"id": "\xff"}',
                        content_type="application/json")
        assert response.status_code == 400

    def test_unsupported_content_type(self, relay):
        """415 names the type and what to send instead."""
        response = post(relay[0], body=None, data=b"a,b", content_type="text/csv")
        assert response.status_code == 415
        assert "unsupported content type 'text/csv'" in response.get_json()["error"]

    def test_wrong_method(self, relay):
        """GET on a hook is 405 JSON, not an HTML page, and says what to send."""
        response = relay[0].get("/hooks/leads")
        assert response.status_code == 405
        assert response.headers["Allow"] == "POST"
        assert response.get_json() == {"error": "/hooks/leads takes POST only",
                                       "hint": "send the webhook as an HTTP POST"}

    def test_one_log_line_per_webhook(self, relay, caplog):
        """Each webhook, answered in front of Flask, still logs its line: ids, no payload."""
        caplog.set_level("INFO", logger="relay.inbound")
        event_id = post(relay[0], body=LEAD).get_json()["event_id"]
        post(relay[0], name="nothing", body=LEAD)
        lines = [r.getMessage() for r in caplog.records if r.name == "relay.inbound"]
        assert len(lines) == 2
        assert lines[0].startswith(f"inbound mapping=leads status=202 event={event_id} bytes=")
        assert lines[1].startswith("inbound mapping=nothing status=404 event=- bytes=")
        assert "Asha" not in " ".join(lines)

    def test_database_locked_is_503_so_the_sender_retries(self, relay):
        """When the write cannot be made, 503 with Retry-After, never 2xx."""
        client, store, path = relay
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            response = post(client, body=LEAD)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert store.events() == []


class TestStored:
    def test_credentials_are_redacted(self, relay):
        """Authorization, signature and token values are not stored."""
        client, store, _ = relay
        response = post(client, body=LEAD, query_string={"token": "s3cret", "utm": "x"},
                        headers={"Authorization": "Bearer abc", "X-Signature": "deadbeef"})
        event = store.event(response.get_json()["event_id"])
        assert event["headers"]["authorization"] == "[redacted]"
        assert event["headers"]["x-signature"] == "[redacted]"
        assert event["query"] == {"token": "[redacted]", "utm": "x"}
        assert "s3cret" not in json.dumps(event, default=str)


# --- signed senders, with the example mappings ---------------------------------------------

SECRETS = {"TYPEFORM_SECRET": "tf-secret", "HUBSPOT_CLIENT_SECRET": "hs-secret",
           "JOTFORM_TOKEN": "jf-token"}
EXAMPLES = MAPPINGS / "examples"


@pytest.fixture
def make_client(tmp_path, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)

    def make(**settings):
        url = f"sqlite:///{tmp_path / 'relay.db'}"
        store = open_store(url)
        store.upgrade()
        registry = Registry(MAPPINGS)
        registry.load()
        app = create_app(Settings(database_url=url, mappings=str(MAPPINGS), **settings),
                         store=store, registry=registry)
        return app.test_client(), store

    return make


def signed(name: str, raw: bytes, url: str, content_type: str = "application/json",
           query: dict | None = None) -> tuple[dict, dict]:
    """Headers and query as the mapping's sender would sign them for `url`."""
    mapping = load_endpoint(MAPPINGS / f"{name}.yaml")
    headers, extra = mapping.preset.sign(mapping.secrets[0], mapping,
                                         Inbound(raw, {}, query or {}, "POST", url), time.time())
    return {"Content-Type": content_type, **headers}, {**(query or {}), **extra}


def test_signed_typeform_is_accepted_and_a_forgery_refused(make_client, caplog):
    """A genuine signature gets 202; a wrong one 401 'invalid signature', logged with why."""
    client, store = make_client()
    raw = (EXAMPLES / "typeform-vip.json").read_bytes()
    headers, _ = signed("typeform-leads", raw, "http://localhost/hooks/typeform-leads")
    assert client.post("/hooks/typeform-leads", data=raw, headers=headers).status_code == 202
    caplog.set_level(logging.WARNING, "relay.inbound")
    headers["Typeform-Signature"] = "sha256=AAAA"
    forged = client.post("/hooks/typeform-leads", data=raw, headers=headers)
    assert (forged.status_code, forged.get_json()) == (401, {"error": "invalid signature"})
    assert "typeform-signature does not match" in caplog.text
    assert len(store.events()) == 1
    store.flush(time.time())
    (refusal,) = [f for f in store.failures() if f["kind"] == "refused"]
    assert (refusal["mapping"], refusal["reason"], refusal["count"]) == (
        "typeform-leads", "typeform-signature does not match", 1)


def test_missing_secret_answers_503_until_set(make_client, monkeypatch):
    """A mapping whose secret variable is unset loads, and asks the sender to retry."""
    monkeypatch.delenv("TYPEFORM_SECRET")
    client, store = make_client()
    response = client.post("/hooks/typeform-leads", json={})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "60"
    assert "TYPEFORM_SECRET is not set" in response.get_json()["error"]
    assert store.events() == []


class TestSalesforce:
    def test_two_leads_two_deliveries_one_ack(self, make_client):
        """An Outbound Message with two leads: one SOAP Ack, two deliveries stored."""
        client, store = make_client()
        raw = (EXAMPLES / "salesforce-two-leads.xml").read_bytes()
        response = client.post("/hooks/salesforce-leads", data=raw,
                               headers={"Content-Type": "text/xml; charset=utf-8"})
        assert response.status_code == 200
        assert response.content_type.startswith("text/xml")
        assert b"<Ack>true</Ack>" in response.data
        (event,) = store.events()
        assert event["total"] == 2
        again = client.post("/hooks/salesforce-leads", data=raw,
                            headers={"Content-Type": "text/xml"})
        assert b"<Ack>true</Ack>" in again.data  # a retry is acknowledged, not stored again
        assert len(store.events()) == 1

    def test_another_organization_gets_a_fault_and_nothing_is_stored(self, make_client):
        """A message from an org the mapping does not name: SOAP fault, nothing stored."""
        client, store = make_client()
        raw = (EXAMPLES / "salesforce-two-leads.xml").read_bytes().replace(
            b"00D5g000004XyZ1EAC", b"00D000000000666AAA")
        response = client.post("/hooks/salesforce-leads", data=raw,
                               headers={"Content-Type": "text/xml"})
        assert response.status_code == 401
        assert b"<soapenv:Fault>" in response.data
        assert b"invalid signature" in response.data
        assert store.events() == []

    def test_broken_xml_is_a_fault_not_a_500(self, make_client):
        """Unparseable XML is a SOAP client fault."""
        client, _ = make_client()
        response = client.post("/hooks/salesforce-leads", data=b"<notifications><oops>",
                               headers={"Content-Type": "text/xml"})
        assert response.status_code == 400
        assert b"faultcode>soapenv:Client" in response.data


class TestHubSpotUrl:
    RAW = (EXAMPLES / "hubspot-phone-changes.json").read_bytes()

    def post(self, client, signed_for, **headers):
        sign_headers, _ = signed("hubspot-contacts", self.RAW, signed_for)
        return client.post("/hooks/hubspot-contacts", data=self.RAW,
                           headers={**sign_headers, **headers})

    def test_public_url_setting(self, make_client):
        """Behind a proxy, RELAY_PUBLIC_URL rebuilds the URL HubSpot signed."""
        client, _ = make_client(public_url="https://relay.example.com/")
        public = "https://relay.example.com/hooks/hubspot-contacts"
        assert self.post(client, public).status_code == 202

    def test_forwarded_headers_only_when_trusted(self, make_client):
        """X-Forwarded-Proto/Host count only with RELAY_TRUST_PROXY."""
        public = "https://hooks.example.org/hooks/hubspot-contacts"
        forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hooks.example.org"}
        untrusted, _ = make_client()
        assert self.post(untrusted, public, **forwarded).status_code == 401
        trusted, _ = make_client(trust_proxy=True)
        assert self.post(trusted, public, **forwarded).status_code == 202


def test_jotform_token_in_the_url(make_client):
    """Jotform's multipart post is accepted with the right ?token= and refused without."""
    client, store = make_client()
    raw = (EXAMPLES / "jotform-appointment.txt").read_bytes()
    content_type = "multipart/form-data; boundary=------------------------4f1c2a9b7e3d5f60"
    ok = client.post("/hooks/jotform-appointments?token=jf-token", data=raw,
                     headers={"Content-Type": content_type})
    assert ok.status_code == 202
    assert client.post("/hooks/jotform-appointments?token=nope", data=raw,
                       headers={"Content-Type": content_type}).status_code == 401
    event = store.event(ok.get_json()["event_id"])
    assert event["query"] == {"token": "[redacted]"}
