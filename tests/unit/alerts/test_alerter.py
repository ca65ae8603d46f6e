"""The alerter (relay/alerts/alerter.py) on the in-memory store, a fake clock and a mock
transport: mappings that do not load or wait on a secret, pacing of a failing channel."""

from __future__ import annotations

import json

import httpx

from relay.alerts import alerter as alerter_module
from relay.alerts.alerter import Alerter
from relay.config import Settings
from relay.model import FailureKind, Outcome
from relay.sources.registry import Registry
from tests.support.alerts import tried
from tests.support.fake_store import FakeStore
from tests.unit.delivery.clock import NOW, FakeClock

LOCKED = """
source: typeform
secret: ${TYPEFORM_SECRET_FOR_ALERTS}
phone: body.phone
flows: [{flow_key: F}]
"""


def recording(status=200):
    posts = []

    def handler(request):
        posts.append(json.loads(request.content))
        return httpx.Response(status)

    return posts, httpx.Client(transport=httpx.MockTransport(handler))


def test_a_mapping_waiting_on_a_secret_alerts_and_recovers(write_mapping, monkeypatch):
    """A locked endpoint fires mapping_locked; once the secret is set (and the file
    reloaded), it resolves."""
    monkeypatch.delenv("TYPEFORM_SECRET_FOR_ALERTS", raising=False)
    path = write_mapping(LOCKED, name="forms")
    registry = Registry(path.parent, check_every=0)
    registry.load()
    posts, http = recording()
    clock = FakeClock(NOW)
    a = Alerter(FakeStore(), Settings(alert_url="https://example.com/hook"), registry,
                clock=clock, http=http)
    a.check()
    a.send_due()
    assert [(p["key"], p["state"]) for p in posts] == [("mapping_locked:forms", "firing")]
    assert "TYPEFORM_SECRET_FOR_ALERTS" in posts[0]["last_error"]
    monkeypatch.setenv("TYPEFORM_SECRET_FOR_ALERTS", "s3cr3t-value-for-forms")
    path.write_text(LOCKED + "\n# touched\n")
    clock.now += 60
    a.check()
    a.send_due()
    assert [(p["key"], p["state"]) for p in posts[1:]] == [("mapping_locked:forms", "resolved")]


def test_a_broken_mapping_alerts_with_its_line(write_mapping):
    """A change that does not load: mapping_broken with file:line, the last good version
    still serving."""
    path = write_mapping("phone: body.phone\nflows: [{flow_key: F}]\n", name="orders")
    registry = Registry(path.parent, check_every=0)
    registry.load()
    path.write_text("phone: body.phone\nflows: 3\n")
    posts, http = recording()
    a = Alerter(FakeStore(), Settings(alert_url="https://example.com/hook"), registry,
                clock=FakeClock(NOW), http=http)
    a.check()
    a.send_due()
    (post,) = posts
    assert (post["key"], post["kind"]) == ("mapping_broken:orders", "mapping_broken")
    assert post["last_error"].startswith("orders.yaml:2: flows")
    assert "flows" not in post["text"]  # the error goes in last_error only, scrubbed


def test_a_send_that_raises_anything_is_a_try_not_a_stuck_message():
    """A bug in a channel (any exception, not the AlertError channels raise): the message
    counts the try and its error, and is tried again after the backoff."""
    store, clock = FakeStore(), FakeClock(NOW)
    tried(store, "a", Outcome.DEAD, FailureKind.SERVER, NOW - 5)

    def broken(request):
        raise RuntimeError("a bug in the channel")

    a = Alerter(store, Settings(alert_url="https://example.com/hook"), None, clock=clock,
                http=httpx.Client(transport=httpx.MockTransport(broken)))
    assert a.check() == 1
    assert a.send_due() == 0
    (row,) = store.rows["alert_outbox"]
    assert row["attempts"] == 1 and "RuntimeError" in row["last_error"]
    assert row["next_at"] == NOW + alerter_module.BASE


def test_a_failing_channel_is_not_tried_again_in_the_same_round():
    """Three messages and a receiver down: one try this round, the others wait for their
    lease; the backoff grows try after try."""
    store, clock = FakeStore(), FakeClock(NOW)
    for mapping in ("a", "b", "c"):
        tried(store, mapping, Outcome.DEAD, FailureKind.SERVER, NOW - 5)
    posts, http = recording(503)
    a = Alerter(store, Settings(alert_url="https://example.com/hook"), None, clock=clock,
                http=http)
    assert a.check() == 3
    assert a.send_due() == 0
    assert len(posts) == 1
    (first,) = [m for m in store.rows["alert_outbox"] if m["attempts"]]
    assert (first["next_at"], first["last_error"]) == (
        NOW + alerter_module.BASE, "example.com answered HTTP 503")
    clock.now += alerter_module.LEASE + 1  # the other two's leases ran out
    a.send_due()
    assert len(posts) == 2
