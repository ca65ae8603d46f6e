"""`relay alerts test`: one test alert through every configured channel, now."""

from __future__ import annotations

import click

from relay.alerts.alerter import Sender
from relay.cli.group import Failed
from relay.config import Settings
from relay.errors import RelayError


@click.group()
def alerts() -> None:
    """Alerts (RELAY_ALERT_URL, RELAY_ALERT_EMAIL): see docs/operations.md, "Alerts"."""


@alerts.command()
def test() -> None:
    """Send one test alert through every configured channel and say what happened
    (exit 1 when none is configured or one fails). No database is needed."""
    settings = Settings.from_env()
    if not (settings.alert_url or settings.alert_email):
        raise RelayError("no alert channel is configured: set RELAY_ALERT_URL (a Slack "
                         "incoming webhook or any URL) and/or RELAY_ALERT_EMAIL with "
                         "RELAY_SMTP_URL")
    sender = Sender(settings)
    failed = 0
    for channel, error, what in sender.test():
        where = sender.describe(channel)
        if error is None:
            click.echo(f"{where}: sent ({what})")
        else:
            failed += 1
            click.echo(f"{where}: FAILED: {error}", err=True)
    if failed:
        click.echo(f"error: {failed} channel(s) failed", err=True)
        raise Failed()
