"""Signed senders over HTTP: 401 for forgeries, 503 while a secret is missing, SOAP for
Salesforce, and the public URL HubSpot signs."""

from __future__ import annotations

import logging
import time

import pytest

from relay.config import Settings
from relay.sources import Inbound, load_endpoint
from relay.sources.registry import Registry
from relay.store import Store
from relay.web.app import create_app
from tests.conftest import MAPPINGS

SECRETS = {"TYPEFORM_SECRET": "tf-secret", "HUBSPOT_CLIENT_SECRET": "hs-secret",
           "JOTFORM_TOKEN": "jf-token"}
EXAMPLES = MAPPINGS / "examples"


@pytest.fixture
def make_client(tmp_path, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)

    def make(**settings):
        url = f"sqlite:///{tmp_path / 'relay.db'}"
        store = Store(url)
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
