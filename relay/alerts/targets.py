"""The alert settings read into what the rules judge (`Thresholds`) and where messages go
(`Targets`); `problems` says what is wrong with them, naming each variable."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from relay.config import parse_duration
from relay.errors import RelayError

if TYPE_CHECKING:
    from relay.config import Settings

_EMAIL = re.compile(r"^[^@\s,;<>\"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
SLACK_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com")
_DURATIONS = ("alert_every", "alert_window", "alert_queue_age")


@dataclass(frozen=True)
class Smtp:
    """RELAY_SMTP_URL read: smtp://[user[:password]@]host[:port][?starttls], smtps://..."""

    host: str
    port: int
    user: str | None
    password: str | None
    tls: str | None  # "ssl" (smtps://), "starttls", or None: plain

    def where(self) -> str:
        """Host and port, for messages (never the user or password)."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Thresholds:
    every: float  # seconds
    window: float  # seconds
    failure_rate: float  # 0..1
    min_attempts: int
    queue_age: float  # seconds
    link: str  # the failures inbox: a URL, or the path when RELAY_PUBLIC_URL is unset


@dataclass(frozen=True)
class Targets:
    url: str  # "" when unset
    slack: bool  # post Slack's {"text"} rather than relay.alert/1
    emails: tuple[str, ...]
    smtp: Smtp | None
    sender: str

    @property
    def channels(self) -> tuple[str, ...]:
        """The configured channels: webhook and/or email."""
        return (("webhook",) if self.url else ()) + (("email",) if self.emails else ())


def thresholds(settings: Settings) -> Thresholds:
    base = settings.public_url.rstrip("/")
    return Thresholds(
        every=parse_duration(settings.alert_every, "RELAY_ALERT_EVERY"),
        window=parse_duration(settings.alert_window, "RELAY_ALERT_WINDOW"),
        failure_rate=settings.alert_failure_rate,
        min_attempts=settings.alert_min_attempts,
        queue_age=parse_duration(settings.alert_queue_age, "RELAY_ALERT_QUEUE_AGE"),
        link=f"{base}/admin/failures" if base else "/admin/failures")


def targets(settings: Settings) -> Targets:
    """RelayError naming the variable when one cannot be read (from_env checked them)."""
    try:
        smtp = parse_smtp_url(settings.smtp_url) if settings.smtp_url else None
    except ValueError as exc:
        raise RelayError(f"RELAY_SMTP_URL: {exc}") from None
    fmt = settings.alert_format
    slack = fmt == "slack" or (fmt == "auto" and is_slack_url(settings.alert_url))
    sender = settings.alert_from or f"relay@{_mail_domain(smtp)}"
    return Targets(settings.alert_url.strip(), slack, tuple(parse_emails(settings.alert_email)),
                   smtp, sender)


def _mail_domain(smtp: Smtp | None) -> str:
    """The SMTP server's domain when it has a name, else this machine's: a sender address
    needs a domain, and an IP address is none."""
    host = smtp.host if smtp else ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if "." in host:
            return host
    name = socket.getfqdn()
    return name if "." in name else f"{name}.localdomain"


def is_slack_url(url: str) -> bool:
    return (urlsplit(url.strip()).hostname or "") in SLACK_HOSTS


def parse_emails(text: str) -> list[str]:
    """Comma- (or space-) separated addresses; ValueError naming a bad one."""
    found = [a for a in re.split(r"[,;\s]+", text.strip()) if a]
    for address in found:
        if not _EMAIL.match(address):
            raise ValueError(f"{address!r} is not an email address")
    return found


def parse_smtp_url(text: str) -> Smtp:
    """ValueError saying what is wrong (never quoting the password)."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("expected smtp://user:pass@host:port (smtps:// for TLS, "
                         "?starttls to upgrade a plain connection)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port is not a number") from None
    if not parts.hostname:
        raise ValueError("no host: expected smtp://user:pass@host:port")
    query = {k.lower(): v for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    starttls = "starttls" in query and (query["starttls"] or [""])[0].lower() not in (
        "0", "false", "no", "off")
    if parts.scheme == "smtps" and starttls:
        raise ValueError("smtps:// is TLS from the start; ?starttls is for smtp://")
    tls = "ssl" if parts.scheme == "smtps" else "starttls" if starttls else None
    return Smtp(parts.hostname, port or (465 if tls == "ssl" else 25),
                unquote(parts.username) if parts.username else None,
                unquote(parts.password) if parts.password is not None else None, tls)


def problems(settings: Settings) -> list[str]:
    """Every problem of the alert settings, one line each, naming the variable (never
    quoting RELAY_ALERT_URL or RELAY_SMTP_URL, which carry secrets)."""
    found = []
    for name in _DURATIONS:
        try:
            parse_duration(getattr(settings, name), settings.variable(name))
        except RelayError as exc:
            found.append(str(exc))
    if not 0 < settings.alert_failure_rate <= 1:
        found.append(f"RELAY_ALERT_FAILURE_RATE={settings.alert_failure_rate}: expected a "
                     "share between 0 and 1, such as 0.25 for 25%")
    url = settings.alert_url.strip()
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or " " in url:
            found.append("RELAY_ALERT_URL is not an http(s) URL: expected a Slack incoming "
                         "webhook (https://hooks.slack.com/services/...) or any https:// URL")
    try:
        emails = parse_emails(settings.alert_email)
    except ValueError as exc:
        found.append(f"RELAY_ALERT_EMAIL: {exc}; expected addresses separated by commas")
        emails = []
    if settings.smtp_url:
        try:
            parse_smtp_url(settings.smtp_url)
        except ValueError as exc:
            found.append(f"RELAY_SMTP_URL: {exc}")
    elif emails:
        found.append("RELAY_ALERT_EMAIL is set but RELAY_SMTP_URL is not: set "
                     "RELAY_SMTP_URL=smtp://user:pass@host:587?starttls (or smtps://...:465)")
    if settings.alert_from and not _EMAIL.match(settings.alert_from.strip()):
        found.append(f"RELAY_ALERT_FROM={settings.alert_from!r}: expected an email address")
    return found
