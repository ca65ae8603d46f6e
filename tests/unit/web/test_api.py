"""/api and /admin: off without RELAY_ADMIN_TOKEN, and behind it when set."""

from __future__ import annotations

import pytest

from relay.config import Settings
from relay.sources.registry import Registry
from relay.store import open_store
from relay.web.app import create_app

pytestmark = pytest.mark.reliability

TOKEN = "admin-token-for-tests-0123456789"
PATHS = ["/api/events", "/api/events/1", "/api/nothing-here", "/admin", "/admin/events/1"]


@pytest.fixture
def make_client(tmp_path, write_mapping):
    folder = write_mapping(name="leads").parent

    def make(token=""):
        url = f"sqlite:///{tmp_path / 'relay.db'}"
        store = open_store(url)
        store.upgrade()
        registry = Registry(folder)
        registry.load()
        app = create_app(Settings(database_url=url, mappings=str(folder), admin_token=token),
                         store=store, registry=registry)
        return app.test_client()

    return make


@pytest.mark.parametrize("path", PATHS)
def test_off_without_a_token(make_client, path):
    """With no token configured, every admin path is 404 and says how to turn it on."""
    response = make_client().get(path)
    assert response.status_code == 404
    assert response.get_json()["hint"] == "set RELAY_ADMIN_TOKEN to turn them on"


BAD_HEADERS = [None, "Bearer", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x",
               "Bearer " + TOKEN[:-1]]


@pytest.mark.parametrize("path", [p for p in PATHS if p.startswith("/api")])
@pytest.mark.parametrize("header", BAD_HEADERS)
def test_a_token_is_required_for_the_api(make_client, path, header):
    """Without the right bearer token: 401, whatever the API path."""
    headers = {"Authorization": header} if header else {}
    response = make_client(TOKEN).get(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("path", [p for p in PATHS if p.startswith("/admin")])
@pytest.mark.parametrize("header", BAD_HEADERS)
def test_the_console_asks_to_log_in(make_client, path, header):
    """Without a session or the right token, console pages send to the login form."""
    headers = {"Authorization": header} if header else {}
    response = make_client(TOKEN).get(path, headers=headers)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login?next=")


def test_login_with_the_token_only(make_client):
    """The login form takes the token and nothing else; a session then opens the console."""
    client = make_client(TOKEN)
    wrong = client.post("/admin/login", data={"token": "nope"})
    assert wrong.status_code == 200
    assert b"That is not the admin token." in wrong.data
    assert client.get("/admin/").status_code == 302
    ok = client.post("/admin/login", data={"token": TOKEN, "next": "https://evil.example/"})
    assert ok.headers["Location"] == "/admin/"
    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" in client.post("/admin/login", data={"token": TOKEN},
                                   base_url="http://relay.example.com").headers["Set-Cookie"]
    assert client.get("/admin/").status_code == 200
    assert client.get("/api/events").status_code == 200  # the session works for the API too


def test_forms_need_the_csrf_token(make_client):
    """A POST without the page's CSRF token is refused."""
    client = make_client(TOKEN)
    client.post("/admin/login", data={"token": TOKEN})
    assert client.post("/admin/events/1/replay", data={}).status_code == 400


def test_the_api_with_the_token(make_client):
    """With the token, events can be listed and read as JSON."""
    client = make_client(TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    posted = client.post("/hooks/leads", json={"phone": "+919812345678"})
    event_id = posted.get_json()["event_id"]
    listed = client.get("/api/events?status=pending", headers=auth).get_json()["events"]
    assert [e["id"] for e in listed] == [event_id]
    shown = client.get(f"/api/events/{event_id}", headers=auth).get_json()
    assert shown["deliveries"][0]["phone"] == "919812345678"
    assert client.get("/api/events/999", headers=auth).status_code == 404
    assert client.get("/api/events?status=weird", headers=auth).status_code == 400


def test_hooks_need_no_token(make_client):
    """Senders never need the admin token."""
    response = make_client(TOKEN).post("/hooks/leads", json={"phone": "+919812345678"})
    assert response.status_code == 202


def test_the_api_matches_its_openapi_document(make_client):
    """Every operation in /api/openapi.json answers as its response schema says."""
    from jsonschema import Draft202012Validator

    client = make_client(TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
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
        ("/api/failures", "get"): lambda: client.get("/api/failures", headers=auth),
        ("/api/preview", "post"): lambda: client.post(
            "/api/preview", json={"mapping": "leads", "body": '{"phone": "+14155552671"}'},
            headers=auth),
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == set(calls)
    for (path, method), call in calls.items():
        response = call()
        spec = document["paths"][path][method]["responses"][str(response.status_code)]
        schema = spec["content"]["application/json"]["schema"]
        errors = list(Draft202012Validator(schema).iter_errors(response.get_json()))
        assert errors == [], (path, method, errors[:1])
    failures = client.get("/api/failures", headers=auth).get_json()["groups"]
    assert failures[0]["reason"] == "missing or invalid phone"


def test_pii_masking(make_client, tmp_path, write_mapping):
    """RELAY_MASK_PII masks phone numbers and emails on the console's pages."""
    from relay.web.console import _mask

    assert _mask("call +91 98123 45678 or asha@example.com", True) == (
        "call •••••••••••5678 or a•••@example.com")
    assert _mask("asha@example.com", False) == "asha@example.com"
    folder = write_mapping(name="leads").parent
    url = f"sqlite:///{tmp_path / 'masked.db'}"
    store = open_store(url)
    store.upgrade()
    registry = Registry(folder)
    registry.load()
    client = create_app(Settings(database_url=url, mappings=str(folder), admin_token=TOKEN,
                                 mask_pii=True), store=store, registry=registry).test_client()
    event_id = client.post("/hooks/leads", json={"phone": "+919812345678"}).get_json()["event_id"]
    client.post("/admin/login", data={"token": TOKEN})
    page = client.get(f"/admin/events/{event_id}").get_data(as_text=True)
    assert "919812345678" not in page
    assert "•5678" in page
    store.dispose()
