"""What an outside attack found (issue 12): forgeries, floods, secrets kept in clear and
malformed input that got a 5xx. Each test is named after the behaviour that failed."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from pathlib import Path

import pytest

from relay.config import Settings
from relay.errors import BodyError, MappingLoadError, SignatureError
from relay.logs import configure_logging
from relay.sources import PRESETS, Inbound, evaluate_raw, load_endpoint
from relay.sources.base import check_age
from relay.sources.registry import Registry
from relay.store import open_store
from relay.web.app import create_app

URL = "http://localhost/hooks/hub"
SECRET = "s3cret"
PHONE_FLOW = "phone: body.phone\nflows: [{flow_key: F}]\n"
TOKEN = "source: generic\nsecret: t0ken\nverify: {type: token, header: X-Webhook-Key}\n"
QUERY_TOKEN = "source: generic\nsecret: t0ken\nverify: {type: token, query: key}\n"
OPEN = "source: generic\nverify: false\nid: body.id\n"
SALESFORCE = "source: salesforce\norganization_id: 00D5g000004XyZ1EAC\nphone: item.sObject.Phone"


def soap(notifications: int = 1, organization: str = "<OrganizationId>00D5g000004XyZ1EAC"
         "</OrganizationId>") -> bytes:
    items = "".join(f"<Notification><Id>04l{i:015d}</Id><sObject><Phone>+919812345678</Phone>"
                    f"</sObject></Notification>" for i in range(notifications))
    return ('<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv='
            '"http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notifications '
            f'xmlns="http://soap.sforce.com/2005/09/outbound">{organization}{items}'
            "</notifications></soapenv:Body></soapenv:Envelope>").encode()


@pytest.fixture
def folder(tmp_path):
    folder = tmp_path / "mappings"
    folder.mkdir()
    for name, text in (("token", TOKEN), ("query", QUERY_TOKEN), ("open", OPEN),
                       ("salesforce", SALESFORCE + "\nflows: [{flow_key: F}]\n")):
        (folder / f"{name}.yaml").write_text(text + ("" if "flows" in text else PHONE_FLOW))
    return folder


@pytest.fixture
def relay(tmp_path, folder):
    """The app over SQLite, with a low cap for unverified endpoints."""

    def make(**settings):
        url = f"sqlite:///{tmp_path / 'relay.db'}"
        store = open_store(url)
        store.upgrade()
        registry = Registry(folder, check_every=0)
        registry.load()
        app = create_app(Settings(database_url=url, mappings=str(folder), **settings),
                         store=store, registry=registry)
        return app.test_client(), store

    return make


def load(write_mapping, text: str, name: str = "hub"):
    return load_endpoint(write_mapping(text, name=name), env={})


class TestForgery:
    def test_hubspot_legacy_signature_is_refused_for_a_body_hubspot_does_not_send(
            self, write_mapping):
        """With legacy_signatures on, a v1-signed body whose content HubSpot would not send
        is refused before it is mapped: a multipart body (where a length extension hides its
        padding in the preamble) is 415, and JSON with the padding appended is 400, even
        where its signature matches."""
        mapping = load(write_mapping, f"source: hubspot\nsecret: {SECRET}\n"
                       f"legacy_signatures: true\n{PHONE_FLOW}")
        genuine = b'[{"phone": "+919812345678"}]'
        extended = genuine + b"\x80" + b"\x00" * 30 + b'{"phone": "+910000000000"}'
        for raw, content_type, status in ((extended, "multipart/form-data; boundary=x", 415),
                                          (extended, "application/json", 400)):
            signature = hashlib.sha256(SECRET.encode() + raw).hexdigest()
            headers = {"x-hubspot-signature": signature, "content-type": content_type}
            mapping.preset.verify(mapping, Inbound(raw, headers, {}, "POST", URL), time.time())
            with pytest.raises(BodyError) as info:
                mapping.preset.envelope(raw, headers, {})
            assert info.value.status == status

    def test_hubspot_v3_is_checked_even_where_legacy_signatures_are_on(self, write_mapping):
        """A request that carries a v3 header is judged by it alone: a matching v1 beside a
        wrong v3 does not pass."""
        mapping = load(write_mapping, f"source: hubspot\nsecret: {SECRET}\n"
                       f"legacy_signatures: true\n{PHONE_FLOW}")
        raw = b"[]"
        headers = {"x-hubspot-signature": hashlib.sha256(SECRET.encode() + raw).hexdigest(),
                   "x-hubspot-signature-v3": "AAAA",
                   "x-hubspot-request-timestamp": str(int(time.time() * 1000))}
        with pytest.raises(SignatureError) as info:
            mapping.preset.verify(mapping, Inbound(raw, headers, {}, "POST", URL), time.time())
        assert "X-HubSpot-Signature-v3 does not match" in info.value.reason

    def test_hubspot_v3_signs_the_url_with_hubspots_listed_characters_decoded(
            self, write_mapping):
        """HubSpot decodes %3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B (and no others)
        in the URL it signs: a request to a URL with them encoded verifies."""
        import base64
        import hmac

        mapping = load(write_mapping, f"source: hubspot\nsecret: {SECRET}\n{PHONE_FLOW}")
        encoded = URL + "?a=%3A%2f%3F%40%21%24%27%28%29%2A%2C%3B&b=x%20y%26z"
        decoded = URL + "?a=:/?@!$'()*,;&b=x%20y%26z"
        stamp = str(int(time.time() * 1000))
        raw = b"[]"
        message = ("POST" + decoded).encode() + raw + stamp.encode()
        signature = base64.b64encode(hmac.new(SECRET.encode(), message, "sha256").digest())
        headers = {"x-hubspot-signature-v3": signature.decode(),
                   "x-hubspot-request-timestamp": stamp}
        mapping.preset.verify(mapping, Inbound(raw, headers, {}, "POST", encoded), time.time())

    @pytest.mark.parametrize("source", sorted(set(PRESETS) - {"generic"}))
    def test_each_preset_refuses_content_types_its_sender_does_not_send(self, source):
        """415, naming what the sender posts, for any other content type."""
        preset = PRESETS[source]
        for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
            if content_type in (preset.content_types or ()):
                continue
            headers = {"Content-Type": content_type} if content_type else {}
            with pytest.raises(BodyError) as info:
                preset.envelope(b'{"a": 1}', headers, {})
            assert info.value.status == 415
            assert preset.content_types[0] in str(info.value)

    @pytest.mark.parametrize("stamp", ["nan", "NaN", "inf", "-Infinity", "1e999"])
    def test_a_nan_or_infinite_timestamp_is_refused(self, stamp):
        """nan compares false with everything, so it used to pass any tolerance."""
        for unit in (1.0, 0.001):  # seconds (Stripe, Calendly, Standard Webhooks); ms (HubSpot)
            with pytest.raises(SignatureError) as info:
                check_age(stamp, time.time(), 300, unit)
            assert info.value.reason.startswith("malformed timestamp")

    def test_a_stripe_signature_with_a_nan_timestamp_is_refused(self, write_mapping):
        """Through a whole preset: `t=nan` is refused for its timestamp."""
        mapping = load(write_mapping, f"source: stripe\nsecret: {SECRET}\n{PHONE_FLOW}")
        headers = {"stripe-signature": "t=nan,v1=00"}
        with pytest.raises(SignatureError) as info:
            mapping.preset.verify(mapping, Inbound(b"{}", headers), time.time())
        assert "malformed timestamp" in info.value.reason

    def test_a_generic_hmac_timestamp_that_is_not_signed_is_a_load_error(self, write_mapping):
        """With timestamp_header, `signed` must include {timestamp}: else a replay with a
        fresh header passes."""
        path = write_mapping("source: generic\nsecret: k\nverify: {type: hmac, header: X-Sig, "
                             f"timestamp_header: X-Ts}}\n{PHONE_FLOW}", name="hmac")
        with pytest.raises(MappingLoadError, match=r"must include \{timestamp\}"):
            load_endpoint(path, env={})


class TestStorage:
    def test_a_flood_of_forged_posts_adds_a_few_rows_and_no_commit_each(self, relay,
                                                                        tmp_path, caplog):
        """2,000 forged posts: a handful of refusal rows (a count and a sample each), the
        database grows by well under 1 MB, the log says why once a minute, and a good
        webhook is still accepted."""
        client, store = relay()
        caplog.set_level(logging.WARNING, "relay.inbound")
        database = tmp_path / "relay.db"

        def size() -> int:
            return sum(p.stat().st_size for p in tmp_path.glob("relay.db*"))

        before = size()
        for i in range(2000):
            response = client.post("/hooks/token", json={"phone": "+919812345678"},
                                   headers={"X-Webhook-Key": f"guess-{i}"})
            assert response.status_code == 401
        good = client.post("/hooks/token", json={"phone": "+919812345678"},
                           headers={"X-Webhook-Key": "t0ken"})
        assert good.status_code == 202
        refused = [f for f in store.failures() if f["kind"] == "refused"]
        assert sum(r["count"] for r in refused) == 2000
        assert len(refused) <= 2  # one kind, at most two minutes
        assert size() - before < 1_000_000, size() - before
        assert database.exists()
        warnings = [r for r in caplog.records if r.getMessage().startswith("refused")]
        assert 1 <= len(warnings) <= 2, len(warnings)

    def test_an_unverified_endpoint_stores_at_most_its_limit_a_minute(self, relay):
        """Past RELAY_UNVERIFIED_LIMIT a minute, 429 with Retry-After and a hint; nothing
        more is stored."""
        client, store = relay(unverified_limit=3)
        answers = [client.post("/hooks/open", json={"id": i, "phone": "+919812345678"})
                   for i in range(5)]
        assert [a.status_code for a in answers] == [202, 202, 202, 429, 429]
        assert 1 <= int(answers[3].headers["Retry-After"]) <= 60
        assert "RELAY_UNVERIFIED_LIMIT" in answers[3].get_json()["hint"]
        assert len(store.events()) == 3
        # a verified endpoint is not capped
        assert all(client.post("/hooks/token", json={"id": i, "phone": "+919812345678"},
                               headers={"X-Webhook-Key": "t0ken"}).status_code == 202
                   for i in range(5))

    def test_the_header_or_query_parameter_a_mapping_verifies_with_is_never_stored(
            self, relay):
        """A generic token is redacted whatever it is called, and so are headers whose
        names say they carry credentials."""
        client, store = relay()
        credentials = {"X-Auth": "a", "X-Sig": "b", "X-Credentials": "c", "X-Access-Key": "d",
                       "X-Private-Key": "e", "X-Bearer": "f", "X-Session": "g"}
        first = client.post("/hooks/token", json={"phone": "+919812345678"},
                            headers={"X-Webhook-Key": "t0ken", **credentials})
        second = client.post("/hooks/query?key=t0ken", json={"phone": "+919812345678"})
        stored = [store.event(r.get_json()["event_id"]) for r in (first, second)]
        assert stored[0]["headers"]["x-webhook-key"] == "[redacted]"
        assert {stored[0]["headers"][k.lower()] for k in credentials} == {"[redacted]"}
        assert stored[1]["query"] == {"key": "[redacted]"}
        assert "t0ken" not in json.dumps(stored, default=str)


class TestSalesforce:
    def test_more_than_100_notifications_get_a_soap_fault(self, relay):
        """Salesforce sends at most 100 a message: 101 are refused, none delivered."""
        client, store = relay()
        response = client.post("/hooks/salesforce", data=soap(101),
                               headers={"Content-Type": "text/xml"})
        assert response.status_code == 400
        assert b"<faultstring>101 Notifications" in response.data
        assert store.events() == []
        accepted = client.post("/hooks/salesforce", data=soap(100),
                               headers={"Content-Type": "text/xml"})
        assert accepted.status_code == 200 and b"<Ack>true</Ack>" in accepted.data

    @pytest.mark.parametrize("organization", [
        "<OrganizationId>00D5g000004XyZ1EAC</OrganizationId>" * 2,
        "<OrganizationId><x>00D5g000004XyZ1EAC</x></OrganizationId>",
    ])
    def test_a_malformed_organization_id_gets_a_soap_fault_not_a_500(self, relay,
                                                                    organization):
        """A repeated OrganizationId, or one with a child element, is a client fault."""
        client, _ = relay()
        response = client.post("/hooks/salesforce", data=soap(1, organization),
                               headers={"Content-Type": "text/xml"})
        assert response.status_code == 400
        assert b"<faultcode>soapenv:Client</faultcode>" in response.data

    @pytest.mark.parametrize("depth", [350, 5000])
    def test_deeply_nested_xml_is_400_not_a_stack_overflow(self, relay, depth):
        """The depth is checked before the document is converted."""
        client, _ = relay()
        raw = b"<a>" * depth + b"x" + b"</a>" * depth
        for name in ("salesforce", "open"):
            response = client.post(f"/hooks/{name}", data=raw,
                                   headers={"Content-Type": "text/xml"})
            assert response.status_code == 400, (name, response.data[:200])
            assert b"nested deeper" in response.data

    def test_a_preview_applies_the_organization_check(self, write_mapping):
        """What the endpoint refuses, a preview does not show as sent."""
        mapping = load(write_mapping, SALESFORCE + "\nflows: [{flow_key: F}]\n", "sf")
        foreign = soap(1, "<OrganizationId>00DXXXXXXXXXXXXXXX</OrganizationId>")
        result = evaluate_raw(mapping, foreign, {"Content-Type": "text/xml"}, {})
        assert result.status == "failed"
        assert "OrganizationId" in result.errors[0].message
        assert evaluate_raw(mapping, soap(1), {"Content-Type": "text/xml"}, {}).deliveries


class TestMappingsAndLogs:
    def test_a_broken_new_mapping_answers_503_naming_its_load_error(self, relay, folder):
        """Not 404 (Typeform disables a webhook that gets one): 503 with Retry-After and
        the file's first problem, without the machine's path; fixed, it serves."""
        client, _ = relay()
        path = folder / "late.yaml"
        path.write_text("phone: body.phone\nflows: [{flow_key: F, wen: x}]\n")
        response = client.post("/hooks/late", json={"phone": "+919812345678"})
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "60"
        assert "late.yaml:2: flows[0].wen" in response.get_json()["hint"]
        assert str(folder) not in response.get_data(as_text=True)
        path.write_text("source: generic\nverify: false\n" + PHONE_FLOW)
        stamp = path.stat()
        os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000_000))
        assert client.post("/hooks/late", json={"phone": "+919812345678"}).status_code == 202
        path.unlink()
        assert client.post("/hooks/late", json={"phone": "+919812345678"}).status_code == 404

    def test_a_newline_in_the_mapping_name_cannot_forge_a_log_line(self, relay, caplog,
                                                                    request):
        """Control characters in logged values are escaped: one request, one line, with the
        logging the web server sets up (create_app leaves logging alone)."""
        request.addfinalizer(functools.partial(logging.setLogRecordFactory,
                                               logging.getLogRecordFactory()))
        configure_logging()
        client, _ = relay()
        caplog.set_level(logging.INFO, "relay.inbound")
        client.post("/hooks/x%0A2026-12-01 INFO relay.inbound forged%0D", json={})
        (line,) = [r.getMessage() for r in caplog.records if r.name == "relay.inbound"]
        assert "\n" not in line and "\r" not in line
        assert "x\\n2026-12-01" in line


def test_schema_of_every_example_mapping_still_loads():
    """The shipped mappings load under the stricter rules."""
    for path in Path("mappings").glob("*.yaml"):
        load_endpoint(path, env={"TYPEFORM_SECRET": "x", "STRIPE_WEBHOOK_SECRET": "x",
                             "HUBSPOT_CLIENT_SECRET": "x", "SHOPIFY_WEBHOOK_SECRET": "x",
                             "RAZORPAY_WEBHOOK_SECRET": "x", "TALLY_SIGNING_SECRET": "x",
                             "CALENDLY_SIGNING_KEY": "x", "GITHUB_WEBHOOK_SECRET": "x",
                             "JOTFORM_TOKEN": "x", "WEBHOOK_SECRET": "whsec_eA==",
                             "SALESFORCE_ORG_ID": "00D5g000004XyZ1EAC"})


class TestAttackFindings:
    """What benchmarks/attack.py found in a first run, each closed."""

    def test_standard_webhooks_key_comes_from_the_verified_header_set(self, write_mapping):
        """Signed with svix-* headers, an unsigned webhook-id beside them does not pick the
        dedup key: a replay with a new webhook-id is still a duplicate."""
        mapping = load(write_mapping, f"source: standard-webhooks\nsecret: whsec_eA==\n"
                       f"{PHONE_FLOW}")
        body = b'{"phone": "+919812345678"}'
        headers = {"content-type": "application/json", "svix-id": "msg_1",
                   "svix-signature": "v1,x", "svix-timestamp": "1"}
        keys = {evaluate_raw(mapping, body, {**headers, **extra}, {}).deliveries[0].dedup_key
                for extra in ({}, {"webhook-id": "msg_attacker"})}
        assert keys == {"msg_1"}

    @pytest.mark.parametrize(("source", "header"), [
        ("shopify", "x-shopify-webhook-id"), ("razorpay", "x-razorpay-event-id"),
        ("github", "x-github-delivery"), ("woocommerce", "x-wc-webhook-delivery-id")])
    def test_a_replay_with_another_unsigned_id_header_is_a_duplicate(
            self, write_mapping, source, header):
        """These senders sign the body alone: the key is the body's digest, whatever id
        header (or none) a replay carries."""
        mapping = load(write_mapping, f"source: {source}\nsecret: k\n{PHONE_FLOW}")
        body = b'{"phone": "+919812345678"}'
        keys = {evaluate_raw(mapping, body, {"content-type": "application/json", **extra},
                             {}).deliveries[0].dedup_key
                for extra in ({header: "real"}, {header: "real-replayed"}, {})}
        assert keys == {hashlib.sha256(body).hexdigest()}

    def test_a_deeply_nested_attribute_is_a_field_error_not_a_500(self, relay, folder):
        """A value nested 500 deep would overflow the stack where it is stored: 422, naming
        the attribute."""
        (folder / "deep.yaml").write_text("source: generic\nverify: false\n"
                                          "attributes: {tags: body.tags}\n" + PHONE_FLOW)
        client, _ = relay()
        tags: object = 1
        for _ in range(500):
            tags = [tags]
        response = client.post("/hooks/deep", json={"phone": "+919812345678", "tags": tags})
        assert response.status_code == 422, response.data[:300]
        assert response.get_json()["errors"][0]["field"] == "attributes.tags"

    def test_a_lone_surrogate_is_stored_and_shown_as_utf8(self, relay, folder):
        """JSON may carry "\\ud800", which no page or database can encode: it is replaced."""
        from relay.store.display import pretty_body
        from relay.store.rows import storable

        assert storable({"name": "a\ud800b"}) == {"name": "a?b"}
        assert pretty_body(b'{"name": "\\ud800"}').encode("utf-8")
        (folder / "named.yaml").write_text("source: generic\nverify: false\n"
                                           "attributes: {name: body.name}\n" + PHONE_FLOW)
        client, store = relay()
        response = client.post("/hooks/named", data=b'{"phone": "+919812345678", '
                               b'"name": "\\ud800"}', content_type="application/json")
        assert response.status_code == 202
        event = store.event(response.get_json()["event_id"])
        assert event["deliveries"][0]["attributes"] == {"name": "?"}

    def test_the_api_answers_400_to_json_nested_past_the_parser(self, tmp_path):
        """/api/replay and /api/preview with 10,000 nested brackets: 400, not 500."""
        from tests.support.admin_app import BEARER, make_admin

        client = make_admin(tmp_path / "admin").client()
        for path in ("/api/replay", "/api/preview"):
            response = client.post(path, data=b"[" * 10_000 + b"]" * 10_000,
                                   headers={**BEARER, "Content-Type": "application/json"})
            assert response.status_code == 400, (path, response.status_code)

    def test_a_login_next_with_a_newline_goes_to_the_events_page(self, tmp_path):
        """A `next` that would forge a header is replaced, not answered 500."""
        from tests.support.admin_app import TOKEN, make_admin

        client = make_admin(tmp_path / "admin").client()
        response = client.post("/admin/login?next=/admin%0D%0AX-Injected:%201",
                               data={"token": TOKEN})
        assert response.status_code == 302
        assert "X-Injected" not in response.headers
        assert response.headers["Location"].endswith("/admin/")

    def test_a_422_hint_never_names_the_machines_path(self, relay, folder):
        """The mapping file is named inside the mappings folder, as the 404 names it."""
        client, _ = relay()
        response = client.post("/hooks/open", json={"id": 1})
        assert response.status_code == 422
        assert "open.yaml in the mappings folder" in response.get_json()["hint"]
        assert str(folder) not in response.get_data(as_text=True)


def test_refusal_kinds_past_the_cap_are_one_kind_logged_once():
    """Past 20 kinds a minute, every further kind is "other", logged once like the rest; an
    escaped quote in a value does not make a new kind."""
    from relay.store.refusals import RefusalCounter, kind_of

    counter = RefusalCounter()
    firsts = [counter.add("m", f"reason {chr(97 + i % 26) * (1 + i)} x", 60.0)[1]
              for i in range(40)]
    assert firsts.count(True) == 21  # 20 kinds, then "other" once
    assert kind_of("malformed timestamp 'x\\'\"kab'") == kind_of("malformed timestamp 'y'")
