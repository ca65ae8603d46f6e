"""Meta Lead Ads: the subscription handshake (the only GET a mapping serves), the
X-Hub-Signature-256 on notifications, checked against Meta's documented recipe, and the
lead's lookup as planned at intake (tests/unit/lookup/ fetches it)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from relay.errors import SignatureError
from relay.sources import Inbound, load_endpoint
from relay.sources.meta import MetaLeadAds
from tests.support.admin_app import serve_folder

APP_SECRET = "meta-app-secret-for-tests"
VERIFY = "a-verify-token-typed-in-the-dashboard"
MAPPING = f"""\
source: meta-lead-ads
secret: {APP_SECRET}
verify_token: {VERIFY}
lookup:
  token: page-token-for-tests
phone: lead.fields.phone_number
flows: [{{flow_key: F}}]
"""
# Meta's documented body: one page entry, one leadgen change.
BODY = json.dumps({"object": "page", "entry": [{"id": "516540199134611", "time": 1764062000,
                   "changes": [{"field": "leadgen", "value": {
                       "leadgen_id": "444444444444", "form_id": "551111744595541",
                       "page_id": "516540199134611", "ad_id": "0",
                       "created_time": 1764061999}}]}]}).encode()


def signature(raw: bytes, secret: str = APP_SECRET) -> str:
    """Meta's recipe, written out: sha256= and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


@pytest.fixture
def endpoint(write_mapping):
    return load_endpoint(write_mapping(MAPPING, name="meta"), env={})


class TestSignature:
    def test_a_genuine_notification_passes(self, endpoint):
        endpoint.preset.verify(endpoint, Inbound(BODY, {
            "x-hub-signature-256": signature(BODY)}), time.time())

    @pytest.mark.parametrize("headers", [
        {}, {"x-hub-signature-256": signature(BODY, "another-secret")},
        {"x-hub-signature-256": signature(BODY)[7:]},  # without sha256=
        {"x-hub-signature-256": signature(BODY + b" ")}])
    def test_forged_missing_and_tampered_are_refused(self, endpoint, headers):
        with pytest.raises(SignatureError):
            endpoint.preset.verify(endpoint, Inbound(BODY, headers), time.time())

    def test_relay_send_signs_as_meta_does(self, endpoint):
        headers, _ = endpoint.preset.sign(APP_SECRET, endpoint, Inbound(BODY, {}), time.time())
        assert headers == {"x-hub-signature-256": signature(BODY)}

    def test_each_leadgen_change_is_a_lookup_keyed_by_its_leadgen_id(self, endpoint):
        result = endpoint.evaluate_raw(BODY, {"content-type": "application/json"}, {})
        assert [(f.url, f.dedup_key) for f in result.lookups] == [
            ("https://graph.facebook.com/v25.0/444444444444", "444444444444")]
        assert result.deliveries == ()


def test_a_mapping_without_its_verify_token_says_how_to_add_it(write_mapping):
    from relay.errors import MappingLoadError
    with pytest.raises(MappingLoadError, match=r"add verify_token: \$\{META_VERIFY_TOKEN\}"):
        load_endpoint(write_mapping(MAPPING.replace(f"verify_token: {VERIFY}\n", ""),
                                    name="meta"), env={})


def test_an_unset_verify_token_locks_the_endpoint(write_mapping):
    text = MAPPING.replace(f"verify_token: {VERIFY}", "verify_token: ${META_VERIFY_TOKEN}")
    loaded = load_endpoint(write_mapping(text, name="meta"), env={})
    assert loaded.locked == "META_VERIFY_TOKEN is not set"


class TestHandshake:
    @pytest.fixture
    def client(self, tmp_path):
        folder = tmp_path / "mappings"
        folder.mkdir()
        (folder / "meta.yaml").write_text(MAPPING)
        (folder / "plain.yaml").write_text("phone: body.phone\nflows: [{flow_key: F}]\n")
        served = serve_folder(folder, tmp_path / "relay.db")
        yield served.client(), served.store
        served.store.dispose()

    def query(self, **params):
        return {"hub.mode": "subscribe", "hub.challenge": "1158201444",
                "hub.verify_token": VERIFY, **params}

    def test_the_right_token_gets_the_challenge_back_as_text(self, client):
        answer = client[0].get("/hooks/meta", query_string=self.query())
        assert answer.status_code == 200 and answer.data == b"1158201444"
        assert answer.content_type.startswith("text/plain")
        assert client[1].events() == []  # answered, not stored

    @pytest.mark.parametrize(("params", "status"), [
        ({"hub.verify_token": "wrong"}, 403), ({"hub.verify_token": VERIFY[:-1]}, 403),
        ({"hub.verify_token": ""}, 403), ({"hub.mode": "unsubscribe"}, 400),
        ({"hub.challenge": "<script>alert(1)</script>"}, 400),
        ({"hub.challenge": "1" * 40}, 400)])
    def test_anything_else_is_refused_and_nothing_echoed(self, client, params, status):
        answer = client[0].get("/hooks/meta", query_string=self.query(**params))
        assert answer.status_code == status
        assert b"<script>" not in answer.data and answer.is_json
        assert client[1].events() == []

    def test_other_mappings_and_methods_stay_405(self, client):
        plain = client[0].get("/hooks/plain", query_string=self.query())
        assert plain.status_code == 405 and plain.headers["Allow"] == "POST"
        put = client[0].put("/hooks/meta", data=b"{}")
        assert put.status_code == 405 and put.headers["Allow"] == "GET, POST"

    def test_a_signed_notification_is_accepted_and_a_forged_one_401(self, client):
        http, store = client
        forged = http.post("/hooks/meta", data=BODY, content_type="application/json",
                           headers={"X-Hub-Signature-256": signature(BODY, "nope")})
        assert forged.status_code == 401 and store.events() == []
        genuine = http.post("/hooks/meta", data=BODY, content_type="application/json",
                            headers={"X-Hub-Signature-256": signature(BODY)})
        # Meta wants a 200; the lead is fetched by the worker, never inside the request.
        assert genuine.status_code == 200, genuine.get_data(as_text=True)
        assert genuine.get_json() == {"status": "accepted", "event_id": 1, "deliveries": 0,
                                      "lookups": 1}


def test_a_mapping_without_a_page_token_says_how_to_add_it(write_mapping):
    from relay.errors import MappingLoadError
    with pytest.raises(MappingLoadError, match=r"add lookup: with token: \$\{META_PAGE_TOKEN"):
        load_endpoint(write_mapping(MAPPING.replace("lookup:\n  token: page-token-for-tests\n",
                                                    ""), name="meta"), env={})


def test_an_unset_page_token_locks_the_endpoint_and_is_never_kept(write_mapping):
    text = MAPPING.replace("page-token-for-tests", "${META_PAGE_TOKEN}")
    loaded = load_endpoint(write_mapping(text, name="meta"), env={})
    assert loaded.locked == "META_PAGE_TOKEN is not set"
    token = load_endpoint(write_mapping(text, name="meta"), env={"META_PAGE_TOKEN": "tok-1"})
    assert token.mapping.lookup.token == "tok-1" and "tok-1" not in repr(token.mapping)


def test_meta_graph_url_and_version_move_the_lookup(write_mapping):
    loaded = load_endpoint(write_mapping(MAPPING, name="meta"), env={
        "META_GRAPH_URL": "http://127.0.0.1:8081", "META_GRAPH_VERSION": "v26.0"})
    result = loaded.evaluate_raw(BODY, {"content-type": "application/json"}, {})
    assert result.lookups[0].url == "http://127.0.0.1:8081/v26.0/444444444444"


class TestTheLead:
    def test_fields_holds_each_fields_first_value(self):
        lead = MetaLeadAds().looked_up({"id": "1", "field_data": [
            {"name": "phone_number", "values": ["+919812345678", "x"]},
            {"name": "full_name", "values": []}, {"name": 7, "values": ["?"]},
            {"name": "odd", "values": "not a list"}, "junk"]})
        assert lead["fields"] == {"phone_number": "+919812345678", "full_name": None}
        assert lead["field_data"][0]["values"] == ["+919812345678", "x"]

    @pytest.mark.parametrize(("status", "answer", "retryable"), [
        (400, {"error": {"code": 100, "message": "does not exist"}}, False),
        (400, {"error": {"code": 190, "message": "token expired"}}, False),
        (403, {"error": {"code": 200, "message": "permission"}}, False),
        (400, {"error": {"code": 613, "message": "calls limit"}}, True),
        (400, {"error": {"code": 1, "is_transient": True}}, True),
        (500, {"error": {"code": 2}}, True), (503, None, True), (404, None, False)])
    def test_which_graph_errors_are_worth_a_retry(self, status, answer, retryable):
        assert MetaLeadAds().lookup_retryable(status, answer) is retryable
