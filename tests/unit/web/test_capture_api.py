"""/api/capture: capture windows and samples as JSON (open, list, read, draft, replay,
close), behind the admin token like the rest of /api; what the document promises is also
checked by test_openapi.py."""

from __future__ import annotations

import json

import pytest

from tests.support.admin_app import BEARER, make_admin

BODY = {"lead": {"first_name": "Asha", "mobile": "+91 98123 45678"}}


@pytest.fixture
def admin(tmp_path):
    return make_admin(tmp_path, capture_refresh=0)  # each webhook reads the windows


def capture(admin, name: str, body: dict | None = None) -> int:
    answer = admin.client().post(f"/hooks/{name}", json=body or BODY)
    assert answer.status_code == 202, answer.get_data(as_text=True)
    return answer.get_json()["sample_id"]


def test_open_list_read_draft_and_close(admin):
    client = admin.client()
    assert client.post("/hooks/newcrm", json=BODY).status_code == 404  # no window yet
    opened = client.post("/api/capture/windows", json={"name": "newcrm", "minutes": 5},
                         headers=BEARER)
    assert opened.status_code == 201
    window = opened.get_json()["window"]
    assert (window["name"], window["taken"]) == ("newcrm", 0)
    assert window["closes_at"] - window["opened_at"] == pytest.approx(300)
    listed = client.get("/api/capture/windows", headers=BEARER).get_json()["windows"]
    assert [w["name"] for w in listed] == ["newcrm"]

    sample_id = capture(admin, "newcrm")
    (row,) = client.get("/api/capture/samples?name=newcrm", headers=BEARER).get_json()[
        "samples"]
    assert (row["id"], row["signature"], row["size"]) == (
        sample_id, "unchecked", len(json.dumps(BODY)))
    assert "body" not in row
    one = client.get(f"/api/capture/samples/{sample_id}", headers=BEARER).get_json()
    assert json.loads(one["body"]) == BODY and one["method"] == "POST"

    drafted = client.get(f"/api/capture/samples/{sample_id}/draft", headers=BEARER)
    assert drafted.status_code == 200
    made = drafted.get_json()
    assert made["preset"] == "generic" and made["name"] == "newcrm"
    assert "body.lead.mobile" in made["yaml"]
    assert made["example"] == f"examples/newcrm-sample-{sample_id}.json"

    closed = client.post("/api/capture/windows/newcrm/close", headers=BEARER)
    assert closed.get_json() == {"closed": True}
    again = client.post("/api/capture/windows/newcrm/close", headers=BEARER)
    assert again.get_json() == {"closed": False}
    assert client.post("/hooks/newcrm", json=BODY).status_code == 404


def test_replay_waits_for_a_mapping_then_accepts(admin):
    client = admin.client()
    client.post("/api/capture/windows", json={"name": "leads"}, headers=BEARER)
    sample_id = capture(admin, "leads", {"phone": "+919812345678"})
    assert admin.store.events() == []  # a sample is never delivered
    replayed = client.post(f"/api/capture/samples/{sample_id}/replay", headers=BEARER)
    assert replayed.status_code == 200
    answer = replayed.get_json()
    assert answer["ok"] and answer["event_id"] == admin.store.events()[0]["id"]

    client.post("/api/capture/windows", json={"name": "nomap"}, headers=BEARER)
    orphan = capture(admin, "nomap")
    refused = client.post(f"/api/capture/samples/{orphan}/replay", headers=BEARER)
    assert refused.status_code == 422
    assert "relay draft nomap" in refused.get_json()["message"]


@pytest.mark.parametrize(("spec", "says"), [
    ({"name": "../etc", "minutes": 5}, "cannot be an endpoint name"),
    ({"name": "ok", "minutes": 0}, "between 1 second and 1440 minutes"),
    ({"name": "ok", "minutes": 100000}, "between 1 second and 1440 minutes"),
    ({"name": "ok", "minutes": "5"}, "minutes a number"),
    ({"name": "ok", "minutes": True}, "minutes a number"),
    ({"name": 5}, "name must be a string"),
    ({"name": "ok", "extra": 1}, "unknown key(s) 'extra'"),
    ([1, 2], "send a JSON object"),
])
def test_a_bad_window_is_400_saying_why(admin, spec, says):
    answer = admin.client().post("/api/capture/windows", json=spec, headers=BEARER)
    assert answer.status_code == 400
    assert says in answer.get_json()["error"]
    assert admin.store.open_windows(0) == []


def test_unknown_samples_bad_limits_and_regions(admin):
    client = admin.client()
    for path in ("/api/capture/samples/9", "/api/capture/samples/9/draft"):
        assert client.get(path, headers=BEARER).status_code == 404
    assert client.post("/api/capture/samples/9/replay", headers=BEARER).status_code == 404
    for query in ("limit=0", "limit=501", "limit=x", "name=..%2F"):
        answer = client.get(f"/api/capture/samples?{query}", headers=BEARER)
        assert answer.status_code == 400, query
    client.post("/api/capture/windows", json={"name": "newcrm"}, headers=BEARER)
    sample_id = capture(admin, "newcrm")
    answer = client.get(f"/api/capture/samples/{sample_id}/draft?region=QQ", headers=BEARER)
    assert answer.status_code == 422 and "no region" in answer.get_json()["error"]


def test_the_token_is_needed(admin):
    client = admin.client()
    assert client.get("/api/capture/windows").status_code == 401
    assert client.post("/api/capture/windows", json={"name": "x"}).status_code == 401
    assert admin.store.open_windows(0) == []


def test_a_console_session_needs_its_csrf_token_to_open(admin):
    client = admin.logged_in()
    assert client.post("/api/capture/windows", json={"name": "x"}).status_code == 403
    opened = client.post("/api/capture/windows", json={"name": "x"},
                         headers={"X-CSRF-Token": admin.csrf(client)})
    assert opened.status_code == 201
