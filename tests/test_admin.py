"""/api and /admin: off without RELAY_ADMIN_TOKEN, and behind it when set."""

from __future__ import annotations

import pytest

from relay.app import create_app
from relay.config import Settings
from relay.registry import Registry
from relay.store import Store

pytestmark = pytest.mark.reliability

TOKEN = "admin-token-for-tests-0123456789"
PATHS = ["/api/events", "/api/events/1", "/api/nothing-here", "/admin", "/admin/events/1"]


@pytest.fixture
def make_client(tmp_path, write_mapping):
    folder = write_mapping(name="leads").parent

    def make(token=""):
        url = f"sqlite:///{tmp_path / 'relay.db'}"
        store = Store(url)
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


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("header", [None, "Bearer", "Bearer wrong", f"Basic {TOKEN}",
                                    f"Bearer {TOKEN}x", "Bearer " + TOKEN[:-1]])
def test_a_token_is_required(make_client, path, header):
    """Without the right bearer token: 401, whatever the path."""
    headers = {"Authorization": header} if header else {}
    response = make_client(TOKEN).get(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


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
