"""Alerts end to end: a real database (SQLite, and PostgreSQL when it answers), a real HTTP
receiver (http.server on 127.0.0.1) and a real SMTP server (aiosmtpd), two alerters sharing
one database as two workers would, and time on a fake clock."""

from __future__ import annotations

import json

import pytest

from relay.alerts import alerter as alerter_module
from relay.alerts.alerter import Alerter
from relay.config import Settings
from relay.model import FailureKind, Outcome
from tests.support.alerts import SMTP_WARNINGS, tried
from tests.unit.delivery.clock import NOW, FakeClock

pytestmark = SMTP_WARNINGS

ADMIN = "admin-token-" + "x" * 32
API_KEY = "engati-secret-api-key-42"


@pytest.fixture
def clock():
    return FakeClock(NOW)


@pytest.fixture
def make(store, clock, monkeypatch):
    """An alerter (a worker's) on the shared database; `env` the settings' environment."""
    monkeypatch.setenv("ENGATI_API_KEY", API_KEY)

    def make(env, name="worker-1"):
        settings = Settings.from_env({"RELAY_ADMIN_TOKEN": ADMIN, **env})
        return Alerter(store, settings, None, clock=clock, name=name)

    return make


def everything_sent(alerters, clock, rounds=30):
    """Run the outbox rounds of every alerter, letting the clock move on between them."""
    for _ in range(rounds):
        for a in alerters:
            a.send_due()
        clock.now += alerter_module.SEND_EVERY


def test_dead_deliveries_one_message_per_group_per_period_then_recovery(
        store, make, clock, receiver):
    """Deaths group per mapping and kind; more deaths within RELAY_ALERT_EVERY add no
    message, after it one more; once none die for a period, one recovery each."""
    a = make({"RELAY_ALERT_URL": receiver.url, "RELAY_PUBLIC_URL": "https://relay.example.com"})
    for _ in range(3):
        tried(store, "leads", Outcome.DEAD, FailureKind.REJECTED, clock.now - 5,
              error="Engati answered HTTP 400 with status 1002 invalid number 919812345678")
    tried(store, "leads", Outcome.DEAD, FailureKind.TIMEOUT, clock.now - 5)
    tried(store, "orders", Outcome.DEAD, FailureKind.REJECTED, clock.now - 5)
    assert a.check() == 3
    a.send_due()
    first = {m["key"]: m for m in receiver.delivered()}
    assert sorted(first) == ["dead:leads:rejected", "dead:leads:timeout",
                             "dead:orders:rejected"]
    message = first["dead:leads:rejected"]
    assert (message["schema"], message["state"], message["count"], message["link"]) == (
        "relay.alert/1", "firing", 3, "https://relay.example.com/admin/failures")
    assert message["last_error"].startswith("Engati answered HTTP 400 with status 1002")
    assert "919812345678" not in receiver.posts[0]["raw"]

    clock.now += 100  # another death, within the period: nothing new
    tried(store, "leads", Outcome.DEAD, FailureKind.REJECTED, clock.now)
    assert a.check() == 0
    clock.now += 800  # past the period: the newer death is announced once; the groups
    # with no death for the whole period recover
    tried(store, "leads", Outcome.DEAD, FailureKind.REJECTED, clock.now - 1)
    assert a.check() == 3
    assert a.check() == 0
    a.send_due()
    assert sorted((m["key"], m["state"]) for m in receiver.delivered()[3:]) == [
        ("dead:leads:rejected", "firing"), ("dead:leads:timeout", "resolved"),
        ("dead:orders:rejected", "resolved")]
    repeat = next(m for m in receiver.delivered()[3:] if m["state"] == "firing")
    assert repeat["count"] == 2  # the deaths of the last period
    assert repeat["id"] == "dead:leads:rejected#2"

    clock.now += 901  # a whole period without a death: it recovers, once
    assert a.check() == 1
    assert a.check() == 0
    a.send_due()
    assert [(m["key"], m["state"]) for m in receiver.delivered()[6:]] == [
        ("dead:leads:rejected", "resolved")]


def test_two_workers_send_each_message_once(store, make, clock, receiver, smtp):
    """Two alerters on one database, checking and sending in turns: every message once
    per channel."""
    env = {"RELAY_ALERT_URL": receiver.url, "RELAY_ALERT_EMAIL": "ops@example.com",
           "RELAY_SMTP_URL": f"smtp://alerts:smtp-pass-77@127.0.0.1:{smtp.port}"}
    one, two = make(env, "worker-1"), make(env, "worker-2")
    tried(store, "leads", Outcome.DEAD, FailureKind.AUTH, clock.now - 5)
    assert one.check() + two.check() == 2 * 2  # two conditions (dead, engati_auth) x 2
    assert one.check() + two.check() == 0
    everything_sent([one, two], clock, rounds=3)
    keys = sorted(m["key"] for m in receiver.delivered())
    assert keys == ["dead:leads:auth", "engati_auth"]
    assert sorted(mail["X-Relay-Alert"] for _, mail, _ in smtp.mails) == [
        "dead:leads:auth firing", "engati_auth firing"]
    (to, mail, _raw) = smtp.mails[0]
    assert to == ["ops@example.com"]
    assert mail["Subject"].startswith("[relay] FIRING: ")
    assert mail["From"].startswith("relay@") and "127.0.0.1" not in mail["From"]


def test_a_failing_receiver_is_retried_until_it_takes_the_message(
        store, make, clock, receiver):
    """A receiver answering 503 gets the message again after a backoff, then it is sent;
    the alert is not lost and nothing is sent twice."""
    receiver.statuses = [503, 503]
    a = make({"RELAY_ALERT_URL": receiver.url})
    tried(store, "leads", Outcome.DEAD, FailureKind.SERVER, clock.now - 5)
    assert a.check() == 1
    assert a.send_due() == 0
    assert a.send_due() == 0  # not due yet: the backoff
    clock.now += alerter_module.BASE
    assert a.send_due() == 0  # the second 503
    clock.now += 2 * alerter_module.BASE
    assert a.send_due() == 1
    assert [p["status"] for p in receiver.posts] == [503, 503, 200]
    assert len({p["json"]["id"] for p in receiver.posts}) == 1  # the same message each time
    everything_sent([a], clock, rounds=5)
    assert len(receiver.posts) == 3


def test_a_receiver_that_never_takes_it_is_given_up(store, make, clock, receiver, caplog):
    """After MAX_TRIES the message is given up and an error line says so."""
    receiver.statuses = [500] * 50
    a = make({"RELAY_ALERT_URL": receiver.url})
    tried(store, "leads", Outcome.DEAD, FailureKind.SERVER, clock.now - 5)
    a.check()
    for _ in range(alerter_module.MAX_TRIES + 2):
        a.send_due()
        clock.now += alerter_module.CAP
    assert len(receiver.posts) == alerter_module.MAX_TRIES
    assert any("given up after 10 tries" in r.getMessage() and r.levelname == "ERROR"
               for r in caplog.records)


def test_no_secret_and_no_phone_in_any_message(store, make, clock, receiver, smtp):
    """Whatever the errors quote, no message carries the API key, the admin token, the
    webhook URL, the SMTP password or a phone number."""
    env = {"RELAY_ALERT_URL": receiver.url, "RELAY_ALERT_EMAIL": "ops@example.com",
           "RELAY_SMTP_URL": f"smtp://alerts:smtp-pass-77@127.0.0.1:{smtp.port}",
           "RELAY_ALERT_MIN_ATTEMPTS": "1"}
    a = make(env)
    leaky = (f"Engati answered HTTP 401 key {API_KEY} token {ADMIN} for +91 98123 45678 "
             f"at {receiver.url} pw smtp-pass-77")
    tried(store, "leads", Outcome.DEAD, FailureKind.AUTH, clock.now - 5, error=leaky,
          phone="919812345678")
    tried(store, "leads", Outcome.RETRY, FailureKind.SERVER, clock.now - 1000, error=leaky)
    a.check()
    everything_sent([a], clock, rounds=3)
    kinds = {m["kind"] for m in receiver.delivered()}
    assert kinds == {"dead", "engati_auth", "queue_age", "failure_rate"}
    texts = [p["raw"] for p in receiver.posts] + [raw for _, _, raw in smtp.mails]
    assert len(smtp.mails) == 4
    for text in texts:
        for secret in (API_KEY, ADMIN, "T0SECRETPATH", "smtp-pass-77", "98123", "45678",
                       "919812345678", "Asha"):
            assert secret not in text, secret


def test_slack_format_through_a_slack_compatible_receiver(store, make, clock, receiver):
    """RELAY_ALERT_FORMAT=slack posts Slack's {"text"} in mrkdwn, the path as the link
    without RELAY_PUBLIC_URL."""
    a = make({"RELAY_ALERT_URL": receiver.url, "RELAY_ALERT_FORMAT": "slack"})
    tried(store, "leads", Outcome.DEAD, FailureKind.TIMEOUT, clock.now - 5)
    a.check()
    a.send_due()
    (post,) = receiver.posts
    assert list(post["json"]) == ["text"]
    assert post["json"]["text"].startswith(":red_circle: *FIRING* 1 delivery of leads")
    assert "Failures inbox: /admin/failures" in post["json"]["text"]
    assert json.loads(post["raw"]) == post["json"]
    assert post["headers"]["Content-Type"] == "application/json"
