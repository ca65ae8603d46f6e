"""What /metrics shows: the queue as the database sees it (depth, oldest, dead) and the
webhooks received by mapping and status."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from relay.errors import StoreUnavailable
from relay.web import metrics
from tests.support.admin_app import make_admin


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _scrape(admin) -> dict[tuple[str, tuple], float]:
    answer = admin.client().get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    return _samples(answer.get_data(as_text=True))


INBOUND = "relay_inbound_requests_total"


def test_the_queue_gauges_come_from_the_store(tmp_path):
    admin = make_admin(tmp_path)
    empty = _scrape(admin)
    assert empty[("relay_queue_depth", ())] == 0
    assert empty[("relay_queue_oldest_seconds", ())] == 0
    assert empty[("relay_dead_deliveries", ())] == 0
    admin.dead_delivery()
    admin.client().post("/hooks/leads", json={"phone": "+919812345679"})
    seen = _scrape(admin)
    assert seen[("relay_queue_depth", ())] == 1
    assert seen[("relay_queue_oldest_seconds", ())] >= 0
    assert seen[("relay_dead_deliveries", ())] == 1


def test_webhooks_are_counted_by_mapping_and_status(tmp_path):
    """Unknown names count as one label, so that probing URLs cannot grow the series."""
    admin = make_admin(tmp_path)
    before = _scrape(admin)
    client = admin.client()
    client.post("/hooks/leads", json={"phone": "+919812345678"})
    client.post("/hooks/leads", json={"phone": "+919812345679"})
    client.post("/hooks/nobody-" + "x" * 8, json={})
    after = _scrape(admin)

    def grew(mapping: str, status: str) -> float:
        key = (INBOUND, (("mapping", mapping), ("status", status)))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("leads", "202") == 2
    assert grew("(unknown)", "404") == 1
    assert not any(re.search("nobody", str(k)) for k in after)


def test_without_the_database_the_queue_gauges_are_left_out():
    """A scrape while the database is down still answers, with the process's metrics."""

    class Down:
        def queue_stats(self, now: float) -> tuple[int, float, int]:
            raise StoreUnavailable("the database is unavailable: down")

    body, content_type = metrics.render(Down(), False)  # type: ignore[arg-type]
    names = {name for name, _ in _samples(body.decode())}
    assert "relay_queue_depth" not in names
    assert "python_info" in names  # the process's own metrics
    assert content_type.startswith("text/plain")


def test_scheduled_and_cancelled_deliveries_are_gauges(tmp_path):
    """A delivery due tomorrow is scheduled, counts in the depth but not in the queue's age;
    cancelling it moves it to the cancelled count."""
    admin = make_admin(tmp_path, "phone: {path: body.phone, region: IN}\n"
                                 "schedule: {delay: 1d}\nflows: [{flow_key: ABC}]\n")
    event_id = admin.client().post("/hooks/leads", json={"phone": "+919812345678"}).get_json()[
        "event_id"]
    seen = _scrape(admin)
    assert seen[("relay_queue_depth", ())] == 1
    assert seen[("relay_scheduled_deliveries", ())] == 1
    assert seen[("relay_queue_oldest_seconds", ())] == 0
    assert seen[("relay_cancelled_deliveries", ())] == 0
    (d,) = admin.store.event(event_id)["deliveries"]
    assert admin.store.cancel_delivery(d["id"], d["created_at"] - 3600)
    after = _scrape(admin)
    assert after[("relay_scheduled_deliveries", ())] == 0
    assert after[("relay_cancelled_deliveries", ())] == 1
    assert after[("relay_queue_depth", ())] == 0
