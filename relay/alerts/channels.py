"""Sending one alert message: a POST of JSON (relay.alert/1, or Slack's text) with httpx, or
an email with smtplib. Blocking, bounded by `timeout` at every step: the alerter calls these
on a thread of its own, never on the delivery loop. Failures raise AlertError naming the
host, never the URL (a Slack webhook's path is its secret) or the SMTP password."""

from __future__ import annotations

import json
import smtplib
import ssl
from collections.abc import Iterable
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import httpx

from relay.alerts.targets import Smtp
from relay.delivery.engati import retry_after
from relay.errors import AlertError

TIMEOUT = 10.0  # seconds for each step of a send (connect, write, read; each SMTP command)


def post_json(url: str, body: dict[str, Any], *, timeout: float = TIMEOUT,
              client: httpx.Client | None = None, now: float = 0.0) -> int:
    """POST `body`; the HTTP status of a 2xx answer, else AlertError. `client` lets unit
    tests pass a MockTransport; by default a client is made for the one call."""
    host = urlsplit(url).hostname or "?"
    own = client is None
    http = client or httpx.Client(timeout=timeout, follow_redirects=False)
    try:
        response = http.post(url, content=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json",
                                      "User-Agent": "relay-alerts"})
    except httpx.TimeoutException:
        raise AlertError(f"{host}: no answer within {timeout:.0f}s") from None
    except httpx.HTTPError as exc:
        raise AlertError(f"{host}: could not connect ({type(exc).__name__})") from None
    finally:
        if own:
            http.close()
    if not 200 <= response.status_code < 300:
        raise AlertError(f"{host} answered HTTP {response.status_code}",
                         retry_after(response.headers, now))
    return response.status_code


def send_mail(smtp: Smtp, mail: EmailMessage, to: Iterable[str], *,
              timeout: float = TIMEOUT) -> None:
    """Send `mail` to `to` through the SMTP server; AlertError saying what failed."""
    where = smtp.where()
    try:
        server: smtplib.SMTP
        if smtp.tls == "ssl":
            server = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=timeout,
                                      context=ssl.create_default_context())
        else:
            server = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
        with server:
            if smtp.tls == "starttls":
                server.starttls(context=ssl.create_default_context())
            if smtp.user:
                server.login(smtp.user, smtp.password or "")
            refused = server.send_message(mail, to_addrs=list(to))
    except smtplib.SMTPAuthenticationError as exc:
        raise AlertError(f"SMTP {where}: login refused ({exc.smtp_code})") from None
    except smtplib.SMTPResponseException as exc:
        raise AlertError(f"SMTP {where}: answered {exc.smtp_code}") from None
    except smtplib.SMTPRecipientsRefused:
        raise AlertError(f"SMTP {where}: every recipient was refused") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise AlertError(f"SMTP {where}: {type(exc).__name__}") from None
    if refused:
        raise AlertError(f"SMTP {where}: {len(refused)} recipient(s) refused")
