"""Cancellation end to end (issue 16), with real processes on SQLite and PostgreSQL: a later
webhook cancels a scheduled delivery, which Engati then never gets; a cancellation that comes
first cancels the delivery as it is stored. `relay show` says `cancelled`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from tests.support.cluster import Cluster
from tests.support.live import wait_for

DELAY = 3.0
NUDGE = """
id: body.id
phone: body.phone
attributes:
  marker: body.id
flows: [{flow_key: NUDGE}]
schedule: {delay: 3s, key: body.checkout}
"""
PAID = """
id: body.id
cancel: {key: body.checkout, mappings: [hooks]}
"""
AT_ONCE = """
id: body.id
phone: body.phone
attributes:
  marker: body.id
flows: [{flow_key: NOW}]
"""
PHONE = "+919812345678"


@pytest.fixture
def relay(database, tmp_path):
    cluster = Cluster(tmp_path, database, mapping=NUDGE)  # served at /hooks/hooks
    (tmp_path / "mappings" / "paid.yaml").write_text(PAID)
    (tmp_path / "mappings" / "now.yaml").write_text(AT_ONCE)
    cluster.start(workers=1)
    # Started in earnest: a SIGTERM before its handlers are in place would kill it.
    wait_for(lambda: "started: concurrency" in cluster.workers[0].output(), what="the worker")
    yield cluster
    codes = cluster.stop()
    assert all(code == 0 for code in codes.values()), (codes, cluster.logs()[-3000:])


def post(relay: Cluster, mapping: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(f"{relay.base}/hooks/{mapping}", json=body, timeout=10)
    assert answer.status_code == 202, answer.text
    return answer.json()


def shown(relay: Cluster, event_id: int) -> dict[str, Any]:
    """The event as `relay show --json` prints it."""
    done = subprocess.run([sys.executable, "-m", "relay", "show", "--json", str(event_id)],
                          env={**os.environ, **relay.env}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def claimed_after(relay: Cluster, due: float) -> None:
    """Wait past `due`, then until a delivery posted after it has reached Engati and nothing
    is pending: the worker claims in order of due time, so it has claimed and finished all
    that was due by then, a cancelled delivery included had it been claimable."""
    wait_for(lambda: time.time() > due, timeout=DELAY + 5, what="the due time")
    probe = relay.markers(1)[0]
    post(relay, "now", {"id": probe, "phone": PHONE})
    assert relay.wait_delivered([probe], timeout=20)[probe] == 1


def test_a_later_webhook_cancels_a_scheduled_delivery(relay):
    """A delivery scheduled 3 s ahead, then a webhook of another mapping with its key: after
    the due time Engati never got it, and it shows `cancelled`; a delivery with another key,
    scheduled alike, arrives."""
    cancelled, kept = relay.markers(2)
    nudge = post(relay, "hooks", {"id": cancelled, "phone": PHONE, "checkout": "tok-1"})
    other = post(relay, "hooks", {"id": kept, "phone": PHONE, "checkout": "tok-2"})
    assert nudge["deliveries"] == other["deliveries"] == 1
    paid = post(relay, "paid", {"id": relay.markers(1)[0], "checkout": "tok-1"})
    assert (paid["deliveries"], paid["cancelled"]) == (0, 1)
    [(due,)] = relay.query(f"SELECT next_at FROM deliveries WHERE event_id = {other['event_id']}")
    claimed_after(relay, due)
    assert relay.delivered([kept])[kept] == 1
    assert relay.delivered([cancelled]) == {}
    assert [c for c in relay.calls() if (c["json"] or {}).get("marker") == cancelled] == []
    (d,) = shown(relay, nudge["event_id"])["deliveries"]
    assert (d["status"], d["attempt_log"], d["last_error"]) == (
        "cancelled", [], f"cancelled by event {paid['event_id']}")


def test_a_cancellation_that_comes_first(relay):
    """A cancellation posted before the webhook it cancels: the delivery is stored cancelled
    and never called."""
    marker = relay.markers(1)[0]
    paid = post(relay, "paid", {"id": relay.markers(1)[0], "checkout": "tok-early"})
    assert paid["cancelled"] == 0
    nudge = post(relay, "hooks", {"id": marker, "phone": PHONE, "checkout": "tok-early"})
    (d,) = shown(relay, nudge["event_id"])["deliveries"]
    assert (d["status"], d["last_error"]) == ("cancelled", f"cancelled by event {paid['event_id']}")
    claimed_after(relay, d["next_at"])
    assert relay.delivered([marker]) == {}
    assert shown(relay, nudge["event_id"])["deliveries"][0]["status"] == "cancelled"
