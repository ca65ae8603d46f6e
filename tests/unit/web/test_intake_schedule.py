"""POST /hooks/<name> with scheduling: what a sender is answered, and what is stored, for a
scheduled delivery, its cancellation from another mapping, and a cancellation that comes
first."""

from __future__ import annotations

import time

import pytest

from relay.config import Settings
from relay.sources.registry import Registry
from relay.store import open_store
from relay.web.app import create_app

NUDGE = """
verify: false
id: body.id
phone: {path: body.phone, region: IN}
flows: [{flow_key: NUDGE}]
schedule: {delay: 1h, key: body.token}
"""
PAID = """
verify: false
id: body.id
cancel: {key: body.checkout_token, mappings: [nudge]}
"""


@pytest.fixture
def relay(tmp_path, write_mapping):
    write_mapping(NUDGE, name="nudge")
    folder = write_mapping(PAID, name="paid").parent
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    store = open_store(url, timeout=0.5)
    store.upgrade()
    registry = Registry(folder)
    registry.load()
    app = create_app(Settings(database_url=url, mappings=str(folder)), store=store,
                     registry=registry)
    return app.test_client(), store


def test_a_scheduled_delivery_then_its_cancellation(relay):
    client, store = relay
    before = time.time()
    answer = client.post("/hooks/nudge", json={"id": "c1", "phone": "9812345678",
                                               "token": "tok"})
    assert (answer.status_code, answer.json["deliveries"]) == (202, 1)
    (d,) = store.event(answer.json["event_id"])["deliveries"]
    assert before + 3600 <= d["next_at"] <= time.time() + 3600
    assert (d["schedule"], d["cancel_key"]) == ("delay 1h", "tok")

    paid = client.post("/hooks/paid", json={"id": "o1", "checkout_token": "tok"})
    assert paid.status_code == 202
    assert (paid.json["status"], paid.json["deliveries"], paid.json["cancelled"]) == (
        "accepted", 0, 1)
    (d,) = store.event(answer.json["event_id"])["deliveries"]
    assert d["status"] == "cancelled"
    again = client.post("/hooks/paid", json={"id": "o1", "checkout_token": "tok"})
    assert (again.status_code, again.json["status"]) == (200, "duplicate")


def test_a_cancellation_that_comes_first(relay):
    client, store = relay
    paid = client.post("/hooks/paid", json={"id": "o2", "checkout_token": "early"})
    assert paid.json["cancelled"] == 0
    answer = client.post("/hooks/nudge", json={"id": "c2", "phone": "9812345678",
                                               "token": "early"})
    assert answer.status_code == 202
    (d,) = store.event(answer.json["event_id"])["deliveries"]
    assert (d["status"], d["last_error"]) == ("cancelled",
                                              f"cancelled by event {paid.json['event_id']}")


def test_a_cancellation_without_a_key_is_skipped(relay):
    client, store = relay
    answer = client.post("/hooks/paid", json={"id": "o3"})
    assert (answer.json["status"], store.event(answer.json["event_id"])["note"]) == (
        "skipped", "cancel: nothing to cancel")
