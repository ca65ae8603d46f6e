"""/api: events, replays, the failures inbox and previews as JSON, with the admin token;
and what it answers to input the review found answered 500 or misread: ids too large for the
database, bodies of the wrong shape, limits outside 1..500, and methods a path does not take.
Who may call it is test_auth.py's."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from tests.support.admin_app import BEARER, make_admin


@pytest.fixture
def admin(tmp_path):
    return make_admin(tmp_path, capture_refresh=0)  # a capture window is seen at once


def test_the_api_with_the_token(admin):
    """With the token, events can be listed and read as JSON."""
    client = admin.client()
    auth = BEARER
    posted = client.post("/hooks/leads", json={"phone": "+919812345678"})
    event_id = posted.get_json()["event_id"]
    listed = client.get("/api/events?status=pending", headers=auth).get_json()["events"]
    assert [e["id"] for e in listed] == [event_id]
    shown = client.get(f"/api/events/{event_id}", headers=auth).get_json()
    assert shown["deliveries"][0]["phone"] == "919812345678"
    assert client.get("/api/events/999", headers=auth).status_code == 404
    assert client.get("/api/events?status=weird", headers=auth).status_code == 400


def test_the_api_matches_its_openapi_document(admin):
    """Every operation in /api/openapi.json answers as its response schema says."""
    client = admin.client()
    auth = BEARER
    client.post("/hooks/leads", json={"phone": "+919812345678"})
    client.post("/hooks/leads", json={"phone": "nope"})
    document = client.get("/api/openapi.json", headers=auth).get_json()
    calls = {
        ("/api/events", "get"): lambda: client.get("/api/events?status=accepted", headers=auth),
        ("/api/events/{event_id}", "get"): lambda: client.get("/api/events/1", headers=auth),
        ("/api/events/{event_id}/replay", "post"): lambda: client.post(
            "/api/events/2/replay", headers=auth),
        ("/api/replay", "post"): lambda: client.post("/api/replay", json={"failed": True},
                                                     headers=auth),
        ("/api/deliveries/{delivery_id}/send-now", "post"): lambda: client.post(
            "/api/deliveries/1/send-now", headers=auth),
        ("/api/deliveries/{delivery_id}/cancel", "post"): lambda: client.post(
            "/api/deliveries/1/cancel", headers=auth),
        ("/api/failures", "get"): lambda: client.get("/api/failures", headers=auth),
        ("/api/preview", "post"): lambda: client.post(
            "/api/preview", json={"mapping": "leads", "body": '{"phone": "+14155552671"}'},
            headers=auth),
        ("/api/playground", "post"): lambda: client.post(
            "/api/playground", json={"name": "leads", "body": '{"phone": "+14155552671"}',
                                     "yaml": "phone: body.phone\nflows: [{flow_key: A}]\n"},
            headers=auth),
        ("/api/playground/save", "post"): lambda: client.post(
            "/api/playground/save", json={"name": "leads", "yaml": "x: 1\n"}, headers=auth),
        ("/api/capture/windows", "post"): lambda: client.post(
            "/api/capture/windows", json={"name": "leads", "minutes": 1}, headers=auth),
        ("/api/capture/windows", "get"): lambda: (
            client.post("/hooks/leads", json={"phone": "+919812345678"}),  # sample 1
            client.get("/api/capture/windows", headers=auth))[1],
        ("/api/capture/samples", "get"): lambda: client.get("/api/capture/samples",
                                                            headers=auth),
        ("/api/capture/samples/{sample_id}", "get"): lambda: client.get(
            "/api/capture/samples/1", headers=auth),
        ("/api/capture/samples/{sample_id}/draft", "get"): lambda: client.get(
            "/api/capture/samples/1/draft", headers=auth),
        ("/api/capture/samples/{sample_id}/replay", "post"): lambda: client.post(
            "/api/capture/samples/1/replay", headers=auth),
        ("/api/capture/windows/{name}/close", "post"): lambda: client.post(
            "/api/capture/windows/leads/close", headers=auth),
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == set(calls)
    for (path, method), call in calls.items():
        response = call()
        spec = document["paths"][path][method]["responses"][str(response.status_code)]
        schema = spec["content"]["application/json"]["schema"]
        errors = list(Draft202012Validator(schema).iter_errors(response.get_json()))
        assert errors == [], (path, method, errors[:1])
        if "/capture/" in path:  # each one succeeds, in this order
            assert response.status_code < 400, (path, response.json)
    failures = client.get("/api/failures", headers=auth).get_json()["groups"]
    assert failures[0]["reason"] == "missing or invalid phone"


HUGE = "9" * 20  # more than a 64-bit integer holds


def test_an_event_id_too_large_for_the_database_is_not_found(admin):
    client = admin.client()
    for answer in (client.get(f"/api/events/{HUGE}", headers=BEARER),
                   client.post(f"/api/events/{HUGE}/replay", headers=BEARER),
                   client.get(f"/api/events/{2**63}", headers=BEARER)):
        assert answer.status_code == 404
        assert answer.is_json and "error" in answer.get_json()
    browser = admin.logged_in()
    page = browser.get(f"/admin/events/{HUGE}")
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert browser.post(f"/admin/events/{HUGE}/replay",
                        data={"csrf": admin.csrf(browser)}).status_code == 404
    replayed = browser.post("/admin/failures/replay",
                            data={"csrf": admin.csrf(browser), "event": [HUGE, "²"]})
    assert replayed.status_code == 302  # nothing to replay, nothing broken


def test_replaying_an_unknown_event_is_not_found(admin):
    answer = admin.client().post("/api/events/999/replay", headers=BEARER)
    assert answer.status_code == 404
    assert answer.get_json() == {"error": "no event 999"}


def test_a_page_before_a_huge_id_is_the_first_page(admin):
    event_id = admin.client().post("/hooks/leads", json={"phone": "+919812345678"}).get_json()[
        "event_id"]
    browser = admin.logged_in()
    for before in (HUGE, "-5", "0"):
        page = browser.get(f"/admin/?before={before}")
        assert page.status_code == 200
        assert f'href="/admin/events/{event_id}"' in page.get_data(as_text=True)


@pytest.mark.parametrize(("body", "message"), [
    ({"dead": True, "mapping": {"a": 1}}, "mapping must be a string: the name of a mapping"),
    ({"dead": "yes"}, "dead and failed must be true or false"),
    ({"failed": 1}, "dead and failed must be true or false"),
    ({"dead": True, "mappings": "leads"}, "unknown key(s) 'mappings'"),
    ({}, "say what to replay"),
    ({"dead": False}, "say what to replay"),
    ([True], "send a JSON object"),
])
def test_replay_takes_booleans_and_a_mapping_name(admin, body, message):
    answer = admin.client().post("/api/replay", json=body, headers=BEARER)
    assert answer.status_code == 400
    assert answer.get_json()["error"].startswith(message)
    assert answer.get_json()["hint"]


@pytest.mark.parametrize("body", [
    {"mapping": "leads", "headers": {"X-Count": 1}},
    {"mapping": "leads", "headers": ["Content-Type: application/json"]},
    {"mapping": "leads", "query": {"page": ["1", "2"]}},
    {"mapping": "leads", "query": {"page": None}},
])
def test_preview_headers_and_query_are_objects_of_strings(admin, body):
    answer = admin.client().post("/api/preview", json=body, headers=BEARER)
    assert answer.status_code == 400
    assert answer.get_json()["error"] == "headers and query are objects of strings"


def test_preview_body_and_mapping_are_strings(admin):
    for body, message in (({"mapping": "leads", "body": {"phone": "1"}}, "body must be"),
                          ({"mapping": 7}, "mapping must be a string")):
        answer = admin.client().post("/api/preview", json=body, headers=BEARER)
        assert answer.status_code == 400
        assert answer.get_json()["error"].startswith(message)


def test_a_preview_of_a_body_that_cannot_be_parsed_fails_saying_why(admin):
    answer = admin.client().post("/api/preview", json={"mapping": "leads", "body": "{nope"},
                                 headers=BEARER)
    assert answer.status_code == 200
    preview = answer.get_json()
    assert preview["status"] == "failed" and preview["requests"] == []
    assert preview["errors"][0]["field"] == "body"


@pytest.mark.parametrize("limit", ["-1", "0", "501", "ten", "1.5"])
def test_limit_outside_1_to_500_is_refused(admin, limit):
    for _ in range(3):
        admin.client().post("/hooks/leads", json={"phone": "+919812345678"})
    answer = admin.client().get(f"/api/events?limit={limit}", headers=BEARER)
    assert answer.status_code == 400
    assert answer.get_json()["error"] == "limit must be a whole number from 1 to 500"


def test_limit_within_1_to_500_is_taken(admin):
    for phone in ("+919812345678", "+919812345679"):
        admin.client().post("/hooks/leads", json={"phone": phone})
    for limit, count in (("1", 1), ("500", 2)):
        events = admin.client().get(f"/api/events?limit={limit}", headers=BEARER).get_json()
        assert len(events["events"]) == count


def test_405_answers_name_the_allowed_methods(admin):
    client = admin.client()
    api = client.delete("/api/events", headers=BEARER)
    assert api.status_code == 405
    assert set(api.headers["Allow"].split(", ")) >= {"GET"}
    assert api.get_json()["error"]
    health = client.post("/healthz")
    assert health.status_code == 405 and "GET" in health.headers["Allow"]
    page = admin.logged_in().delete("/admin/failures")
    assert page.status_code == 405 and "GET" in page.headers["Allow"]
    assert page.mimetype == "text/html"


class TestSearch:
    def test_phone_in_any_format_and_text_in_the_body(self, admin):
        """/api/events?phone= takes a number as people type it; q= finds text in the body."""
        wanted = admin.client().post("/hooks/leads", json={
            "phone": "+919822012345", "email": "asha@example.com"}).get_json()["event_id"]
        admin.client().post("/hooks/leads", json={"phone": "+919812345678",
                                                  "email": "ravi@example.com"})
        for query in ("phone=09822012345", "phone=%2B91%2098220%2012345", "phone=9822012345",
                      "q=asha%40EXAMPLE", "q=asha&phone=9822012345&since=1h"):
            events = admin.client().get(f"/api/events?{query}", headers=BEARER).get_json()
            assert [e["id"] for e in events["events"]] == [wanted], query
        for query in ("q=%25%25%25", "q=___", "phone=%25", "since=2099-01-01"):
            events = admin.client().get(f"/api/events?{query}", headers=BEARER).get_json()
            assert events == {"events": []}, query

    @pytest.mark.parametrize(("query", "error"), [
        ("q=ab", "q='ab': search for at least 3 characters"),
        ("q=", "q='': search for at least 3 characters"),
        ("since=yesterday", "since='yesterday': use a duration or a date"),
        ("since=2026-13-01", "since='2026-13-01': use a duration or a date"),
        ("since=0h", "since='0h': use a duration or a date")])
    def test_bad_search_input_is_a_400_saying_why(self, admin, query, error):
        answer = admin.client().get(f"/api/events?{query}", headers=BEARER)
        assert answer.status_code == 400
        assert answer.get_json()["error"] == error


def test_a_nul_in_a_search_is_400_not_an_outage(admin):
    answer = admin.client().get("/api/events?q=abc%00def", headers=BEARER)
    assert answer.status_code == 400 and "NUL" in answer.get_json()["error"]
    page = admin.logged_in().get("/admin/?q=%00%00%00")
    assert page.status_code == 200 and "without NUL" in page.get_data(as_text=True)
