"""/api/deliveries/<id>/send-now and /cancel: an operator's hand on a scheduled delivery,
over a real SQLite store, with the admin token; and what /api shows of scheduled and
cancelled deliveries."""

from __future__ import annotations

import time

import pytest

from tests.support.admin_app import BEARER, make_admin

LATER = """
phone: {path: body.phone, region: IN}
schedule:
  delay: 1h
  key: body.checkout
flows:
  - flow_key: ABC
"""


@pytest.fixture
def admin(tmp_path):
    admin = make_admin(tmp_path, LATER)
    yield admin
    admin.store.dispose()


def scheduled(admin) -> tuple[int, dict]:
    """A webhook whose delivery is due in an hour: its event id and the delivery as shown."""
    posted = admin.client().post("/hooks/leads", json={"phone": "+919812345678",
                                                       "checkout": "chk-9"})
    event_id = posted.get_json()["event_id"]
    shown = admin.client().get(f"/api/events/{event_id}", headers=BEARER).get_json()
    return event_id, shown["deliveries"][0]


def test_a_scheduled_delivery_shows_its_schedule_and_key(admin):
    before = time.time()
    event_id, d = scheduled(admin)
    assert d["status"] == "pending" and d["cancel_key"] == "chk-9"
    assert d["schedule"] and "1h" in d["schedule"]
    assert d["next_at"] >= before + 3600 - 1
    listed = admin.client().get("/api/events?status=scheduled", headers=BEARER).get_json()
    assert [(e["id"], e["scheduled"]) for e in listed["events"]] == [(event_id, 1)]
    assert listed["events"][0]["scheduled_at"] == d["next_at"]


def test_send_now_answers_the_new_state(admin):
    _, d = scheduled(admin)
    answer = admin.client().post(f"/api/deliveries/{d['id']}/send-now", headers=BEARER)
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["ok"] and body["message"] == f"delivery {d['id']}: due now"
    assert body["delivery"]["schedule"] == "sent now by an operator"
    assert body["delivery"]["next_at"] <= time.time()
    assert admin.client().get("/api/events?status=scheduled", headers=BEARER).get_json()[
        "events"] == []


def test_cancel_then_it_is_cancelled_everywhere(admin):
    event_id, d = scheduled(admin)
    answer = admin.client().post(f"/api/deliveries/{d['id']}/cancel", headers=BEARER)
    assert answer.status_code == 200
    assert answer.get_json()["delivery"]["status"] == "cancelled"
    assert answer.get_json()["delivery"]["last_error"] == "cancelled by an operator"
    listed = admin.client().get("/api/events?status=cancelled", headers=BEARER).get_json()
    assert [(e["id"], e["cancelled"]) for e in listed["events"]] == [(event_id, 1)]
    again = admin.client().post(f"/api/deliveries/{d['id']}/send-now", headers=BEARER)
    assert again.status_code == 409
    assert again.get_json()["error"] == (
        f"delivery {d['id']}: already cancelled by an operator")
    assert admin.store.claim("w", 5, time.time() + 7200, 60) == []


def test_in_flight_is_409_and_unknown_404(admin):
    _, d = scheduled(admin)
    admin.store.claim("w", 5, time.time() + 3601, 60)  # due, and leased to a worker
    answer = admin.client().post(f"/api/deliveries/{d['id']}/cancel", headers=BEARER)
    assert answer.status_code == 409 and "in flight" in answer.get_json()["error"]
    assert admin.store.delivery(d["id"])["status"] == "pending"
    missing = admin.client().post("/api/deliveries/99/cancel", headers=BEARER)
    assert missing.status_code == 404 and missing.get_json()["error"] == "no delivery 99"
    huge = admin.client().post(f"/api/deliveries/{2**63}/cancel", headers=BEARER)
    assert huge.status_code == 404


def test_the_token_is_needed(admin):
    _, d = scheduled(admin)
    assert admin.client().post(f"/api/deliveries/{d['id']}/cancel").status_code == 401
    assert admin.store.delivery(d["id"])["status"] == "pending"
