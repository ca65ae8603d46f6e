"""Scheduled deliveries are durable (issue 16), with real processes on SQLite and PostgreSQL:
a delivery scheduled 3 s ahead reaches Engati after 3 s, not before, exactly once, though
the worker that was waiting for it is killed in between."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.cluster import Cluster, report
from tests.support.live import wait_for

pytestmark = pytest.mark.reliability

DELAY = 3.0
SCHEDULED = """
id: body.id
phone: body.phone
attributes:
  marker: body.id
flows: [{flow_key: LATER}]
schedule: {delay: 3s}
"""


@pytest.fixture
def relay(database, tmp_path):
    cluster = Cluster(tmp_path, database, mapping=SCHEDULED)
    yield cluster
    codes = cluster.stop()
    assert all(code == 0 for code in codes.values()), (codes, cluster.logs()[-3000:])


def test_a_scheduled_delivery_survives_the_worker_killed(relay, database):
    """kill -9 of the worker while it waits for a delivery due in 3 s, and a new worker:
    Engati gets the call after the 3 s, never before, exactly once."""
    relay.start(workers=1)
    wait_for(lambda: "started: concurrency" in relay.workers[0].output(), what="the first worker")
    marker = relay.markers(1)[0]
    answer = httpx.post(f"{relay.base}/hooks/hooks",
                        json={"id": marker, "phone": "+919812345678"}, timeout=10)
    assert (answer.status_code, answer.json()["deliveries"]) == (202, 1)
    [(received_at, next_at)] = relay.query(
        "SELECT e.received_at, d.next_at FROM events e JOIN deliveries d ON d.event_id = e.id")
    assert next_at == pytest.approx(received_at + DELAY, abs=0.001)
    # The worker has claimed at least once since (it holds no lease: nothing was due), and
    # dies a second before the due time.
    wait_for(lambda: time.time() >= received_at + DELAY - 1, what="a second before due")
    assert relay.calls() == []
    relay.kill_worker(relay.workers[0])
    relay.start_worker()
    assert time.time() < received_at + DELAY, "the scenario restarted the worker too late"
    counts = relay.wait_delivered([marker], timeout=DELAY + 20)
    calls = [c for c in relay.calls() if (c["json"] or {}).get("marker") == marker]
    assert counts[marker] == 1 and len(calls) == 1
    assert calls[0]["at"] >= received_at + DELAY
    [(status, attempts)] = relay.query("SELECT status, attempts FROM deliveries")
    assert (status, attempts) == ("delivered", 1)
    report("scheduled 3 s ahead, worker killed while waiting",
           database.split(":", 1)[0].split("+", 1)[0],
           sent=1, delivered=counts[marker], late_s=round(calls[0]["at"] - next_at, 3))
