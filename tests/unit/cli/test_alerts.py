"""`relay alerts test`: one test alert through every configured channel, against a real HTTP
receiver and a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from relay.cli import main
from tests.support.alerts import SMTP_WARNINGS
from tests.support.live import free_port

pytestmark = SMTP_WARNINGS

ALERT_VARS = ("RELAY_ALERT_URL", "RELAY_ALERT_EMAIL", "RELAY_SMTP_URL", "RELAY_ALERT_FORMAT")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ALERT_VARS:
        monkeypatch.delenv(name, raising=False)


def run(env):
    return CliRunner().invoke(main, ["alerts", "test"], env=env)


def test_every_channel_gets_a_test_alert(receiver, smtp):
    """Webhook and email: one test message each, and a line per channel that names it
    without its secret parts."""
    result = run({"RELAY_ALERT_URL": receiver.url, "RELAY_ALERT_EMAIL": "ops@example.com",
                  "RELAY_SMTP_URL": f"smtp://alerts:smtp-pass-77@127.0.0.1:{smtp.port}"})
    assert result.exit_code == 0, result.output
    assert "webhook (relay.alert/1) to 127.0.0.1: sent (HTTP 200)" in result.output
    assert (f"email to ops@example.com via 127.0.0.1:{smtp.port}: sent (accepted by "
            in result.output)
    assert "T0SECRETPATH" not in result.output and "smtp-pass-77" not in result.output
    (message,) = receiver.delivered()
    assert (message["schema"], message["state"], message["kind"]) == (
        "relay.alert/1", "test", "test")
    ((to, mail, _raw),) = smtp.mails
    assert to == ["ops@example.com"]
    assert mail["Subject"] == "[relay] TEST: Test alert from relay"


def test_nothing_configured_is_an_error():
    """Without a channel: exit 1 saying which variables to set."""
    result = run({})
    assert result.exit_code == 1
    assert "no alert channel is configured" in result.output
    assert "RELAY_ALERT_URL" in result.output


def test_a_failing_channel_fails_the_command(receiver):
    """A receiver answering 500 and an SMTP server that is not there: exit 1, each said."""
    receiver.statuses = [500]
    result = run({"RELAY_ALERT_URL": receiver.url, "RELAY_ALERT_EMAIL": "ops@example.com",
                  "RELAY_SMTP_URL": f"smtp://127.0.0.1:{free_port()}"})
    assert result.exit_code == 1
    assert "webhook (relay.alert/1) to 127.0.0.1: FAILED: 127.0.0.1 answered HTTP 500" in (
        result.output)
    assert "email to ops@example.com via 127.0.0.1:" in result.output
    assert "FAILED: SMTP 127.0.0.1:" in result.output
    assert "error: 2 channel(s) failed" in result.output


def test_a_wrong_smtp_password_is_said(smtp):
    """The SMTP server refusing the login: the output says so, never the password."""
    result = run({"RELAY_ALERT_EMAIL": "ops@example.com",
                  "RELAY_SMTP_URL": f"smtp://alerts:wrong-pass@127.0.0.1:{smtp.port}"})
    assert result.exit_code == 1
    assert "login refused" in result.output and "wrong-pass" not in result.output


def test_a_bad_setting_names_its_variable():
    result = run({"RELAY_ALERT_URL": "not a url"})
    assert result.exit_code == 1
    assert "error: RELAY_ALERT_URL is not an http(s) URL" in result.output
