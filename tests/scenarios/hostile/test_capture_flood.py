"""A hostile sender against capture: a flood of an unknown name, of a closed window, and of
a full one stores nothing beyond the cap; an open window's samples are bounded in size."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from relay.config import Settings
from relay.sources.registry import Registry
from relay.store import open_store
from relay.store.tables import capture_samples, events, refusals
from relay.web.app import create_app

SECRETLY = "source: typeform\nsecret: s3cret\nphone: body.phone\nflows: [{flow_key: F}]\n"


@pytest.fixture
def app(tmp_path):
    folder = tmp_path / "mappings"
    folder.mkdir()
    (folder / "signed.yaml").write_text(SECRETLY)
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    store = open_store(url)
    store.upgrade()
    registry = Registry(folder, check_every=0)
    registry.load()
    made = create_app(Settings(database_url=url, mappings=str(folder), capture_samples=5,
                               max_body=4096), store=store, registry=registry)
    made.wsgi_app.windows.every = 0  # type: ignore[attr-defined]  # see windows at once
    yield made.test_client(), store
    store.dispose()


def counts(store) -> tuple[int, int, int]:
    with store.engine.connect() as conn:
        return tuple(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                     for t in (capture_samples, events, refusals))


def test_a_flood_of_an_unknown_name_and_a_closed_window_stores_nothing(app):
    client, store = app
    window = store.open_window("gone", time.time() - 100, time.time() - 50)  # closed
    assert window["taken"] == 0
    before = counts(store)
    for index in range(300):
        name = "nobody" if index % 2 else "gone"
        answer = client.post(f"/hooks/{name}", json={"phone": "+919812345678", "n": index})
        assert answer.status_code == 404
    assert counts(store) == before == (0, 0, 0)


def test_a_full_window_stores_no_more_and_a_forgery_nothing(app):
    client, store = app
    store.open_window("open-door", time.time(), time.time() + 60)
    store.open_window("signed", time.time(), time.time() + 60)
    for index in range(200):
        answer = client.post("/hooks/open-door", json={"n": index})
        assert answer.status_code == 202
    assert counts(store)[0] == 5
    for _ in range(50):  # a forged signature for a mapping with a secret: 401, never kept
        assert client.post("/hooks/signed", json={"phone": "1"}, headers={
            "Typeform-Signature": "sha256=forged"}).status_code == 401
    assert counts(store)[:2] == (5, 0)


def test_a_body_over_the_limit_is_not_kept(app):
    client, store = app
    store.open_window("big", time.time(), time.time() + 60)
    answer = client.post("/hooks/big", data=b"x" * 5000, content_type="text/plain")
    assert answer.status_code == 413
    assert counts(store)[0] == 0


def test_a_get_to_an_open_window_is_405_and_not_kept(app):
    client, store = app
    store.open_window("peek", time.time(), time.time() + 60)
    assert client.get("/hooks/peek").status_code == 405
    assert counts(store)[0] == 0


def typeform_signed(body: bytes) -> dict[str, str]:
    import base64
    import hashlib
    import hmac
    digest = hmac.new(b"s3cret", body, hashlib.sha256).digest()
    return {"Typeform-Signature": "sha256=" + base64.b64encode(digest).decode(),
            "Content-Type": "application/json"}


def test_a_full_or_closed_window_on_a_live_mapping_hands_requests_back_to_it(app):
    """Once a window on a mapping is full, or closed by another process while this one
    still holds it, the mapping's requests are events again: accepted and stored, never a
    2xx that keeps nothing."""
    client, store = app
    window = store.open_window("signed", time.time(), time.time() + 60)
    bodies = [b'{"phone": "+9198123456%02d"}' % i for i in range(7)]
    answers = [client.post("/hooks/signed", data=b, headers=typeform_signed(b)).get_json()
               for b in bodies]
    assert [a["status"] for a in answers] == ["captured"] * 5 + ["accepted"] * 2
    assert counts(store)[:2] == (5, 2)
    # Closed elsewhere, while this process keeps the windows it read last.
    client.application.wsgi_app.windows.every = 3600
    store.close_window("signed", time.time())
    assert client.application.wsgi_app.windows.get("signed")["id"] == window["id"]
    late = b'{"phone": "+919812345699"}'
    answer = client.post("/hooks/signed", data=late, headers=typeform_signed(late))
    assert answer.status_code == 202 and answer.get_json()["status"] == "accepted"
    assert counts(store)[:2] == (5, 3)
