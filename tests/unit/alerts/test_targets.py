"""The alert settings (relay/alerts/targets.py via Settings.from_env): read, and every bad
value a configuration error naming its variable, never quoting a secret."""

from __future__ import annotations

import pytest

from relay.alerts.targets import parse_smtp_url, targets, thresholds
from relay.config import Settings
from relay.errors import RelayError


def settings(**env):
    return Settings.from_env(env)


class TestRead:
    def test_defaults(self):
        """Nothing set: no channel; 15-minute periods; the link is the path."""
        s = settings()
        assert targets(s).channels == ()
        limits = thresholds(s)
        assert (limits.every, limits.window, limits.queue_age, limits.failure_rate,
                limits.min_attempts, limits.link) == (900, 900, 900, 0.25, 20, "/admin/failures")

    def test_slack_is_recognised_by_its_host(self):
        """hooks.slack.com gets Slack's format; another URL JSON unless told."""
        assert targets(settings(RELAY_ALERT_URL="https://hooks.slack.com/services/T/B/x")).slack
        assert not targets(settings(RELAY_ALERT_URL="https://example.com/hook")).slack
        assert targets(settings(RELAY_ALERT_URL="https://example.com/hook",
                                RELAY_ALERT_FORMAT="slack")).slack

    def test_email_and_smtp(self):
        """Several addresses; the SMTP URL's parts; a sender by default."""
        t = targets(settings(RELAY_ALERT_EMAIL="a@example.com, b@example.com",
                             RELAY_SMTP_URL="smtp://me%40x.com:p%3Ass@mail.example.com:587"
                                            "?starttls", RELAY_PUBLIC_URL="https://r.example/"))
        assert t.channels == ("email",)
        assert t.emails == ("a@example.com", "b@example.com")
        assert (t.smtp.host, t.smtp.port, t.smtp.user, t.smtp.password, t.smtp.tls) == (
            "mail.example.com", 587, "me@x.com", "p:ss", "starttls")
        assert t.sender == "relay@mail.example.com"

    def test_smtp_ports_by_scheme(self):
        """smtps:// is TLS on 465 by default; smtp:// plain on 25."""
        assert (parse_smtp_url("smtps://h").port, parse_smtp_url("smtps://h").tls) == (465, "ssl")
        assert (parse_smtp_url("smtp://h").port, parse_smtp_url("smtp://h").tls) == (25, None)

    def test_public_url_makes_the_link(self):
        s = settings(RELAY_PUBLIC_URL="https://relay.example.com/")
        assert thresholds(s).link == "https://relay.example.com/admin/failures"


class TestProblems:
    @pytest.mark.parametrize(("env", "named"), [
        ({"RELAY_ALERT_URL": "hooks.slack.com/services/SECRETPATH"}, "RELAY_ALERT_URL"),
        ({"RELAY_ALERT_URL": "ftp://example.com/SECRETPATH"}, "RELAY_ALERT_URL"),
        ({"RELAY_ALERT_EMAIL": "ops@example.com, nope", "RELAY_SMTP_URL": "smtp://h"},
         "RELAY_ALERT_EMAIL"),
        ({"RELAY_ALERT_EMAIL": "ops@example.com"}, "RELAY_SMTP_URL"),
        ({"RELAY_SMTP_URL": "http://user:SECRETPW@h"}, "RELAY_SMTP_URL"),
        ({"RELAY_SMTP_URL": "smtp://user:SECRETPW@h:port"}, "RELAY_SMTP_URL"),
        ({"RELAY_ALERT_EVERY": "soon"}, "RELAY_ALERT_EVERY"),
        ({"RELAY_ALERT_QUEUE_AGE": "0s"}, "RELAY_ALERT_QUEUE_AGE"),
        ({"RELAY_ALERT_FAILURE_RATE": "25"}, "RELAY_ALERT_FAILURE_RATE"),
        ({"RELAY_ALERT_MIN_ATTEMPTS": "-1"}, "RELAY_ALERT_MIN_ATTEMPTS"),
        ({"RELAY_ALERT_FROM": "relay"}, "RELAY_ALERT_FROM"),
        ({"RELAY_ALERT_FORMAT": "xml"}, "RELAY_ALERT_FORMAT"),
    ])
    def test_a_bad_value_names_its_variable(self, env, named):
        """The error says which variable and never quotes a URL's secret part."""
        with pytest.raises(RelayError) as caught:
            settings(**env)
        assert named in str(caught.value)
        assert "SECRETPATH" not in str(caught.value) and "SECRETPW" not in str(caught.value)

    def test_secrets_are_not_in_the_settings_repr(self):
        s = settings(RELAY_ALERT_URL="https://hooks.slack.com/services/SECRETPATH",
                     RELAY_ALERT_EMAIL="a@example.com", RELAY_SMTP_URL="smtp://u:SECRETPW@h")
        assert "SECRETPATH" not in repr(s) and "SECRETPW" not in repr(s)
