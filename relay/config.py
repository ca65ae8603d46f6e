"""Settings from the environment (the README's settings table lists every one).

`Settings` owns every environment variable the relay itself reads. The mapping files read
their own: `${NAME}` in a mapping is taken from the environment when the file loads, and a
mapping's `engati:` keys default to ENGATI_CUSTOMER_ID, ENGATI_BOT_KEY, ENGATI_API_KEY,
ENGATI_BASE_URL and ENGATI_RATE_LIMIT (relay/mapping/load.py, given the environment as `env`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import ClassVar

from relay.errors import RelayError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, name: str = "duration", zero: bool = False) -> float:
    """`30d`, `12h`, `15m`, `90s` -> seconds (`0s` too, where `zero` allows it)."""
    match = _DURATION.match(text)
    if not match or float(match[1]) < 0 or (float(match[1]) == 0 and not zero):
        raise RelayError(f"{name}={text!r}: expected a duration such as 30d, 12h, 15m or 90s")
    return float(match[1]) * _UNITS[match[2]]


def parse_since(text: str, now: float, name: str = "since") -> float:
    """`24h` (that long before `now`) or an ISO date such as 2026-11-01 (UTC) -> UNIX time."""
    if re.fullmatch(r"\s*\d+(\.\d+)?\s*[smhd]\s*", text):
        return now - parse_duration(text, name)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RelayError(f"{name}={text!r}: use 24h, 7d, 30m or a date like 2026-11-01") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


MIN_TOKEN = 32  # characters of RELAY_ADMIN_TOKEN
_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True,
             "0": False, "false": False, "no": False, "off": False}


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///relay.db"
    mappings: str = "mappings"
    max_body: int = 1024 * 1024
    concurrency: int = 32
    lease: float = 60.0
    retry_base: float = 2.0
    retry_cap: float = 3600.0
    max_attempts: int = 48
    max_age: float = 86400.0
    poll_interval: float = 0.5
    shutdown_grace: float = 10.0
    engati_timeout: float = 15.0
    db_timeout: float = 5.0
    admin_token: str = field(default="", repr=False)  # turns /api and /admin on
    # signs console session cookies; unset: a random key kept in the database
    secret_key: str = field(default="", repr=False)
    mask_pii: bool = False  # mask phone numbers and emails in the console
    retention: str = ""  # e.g. 30d: the worker purges finished events older than that
    public_url: str = ""  # the relay's public base URL, for senders that sign the URL
    trust_proxy: bool = False  # take the public URL from X-Forwarded-Proto/-Host
    request_timeout: float = 10.0  # seconds a client has to send its whole request
    # webhooks a minute one web process stores for a mapping that verifies nothing (429 above)
    unverified_limit: int = 120
    # samples a capture window keeps (`relay capture`); later requests are answered, not kept
    capture_samples: int = 50
    # seconds a web process keeps the capture windows it read before reading them again
    capture_refresh: float = 1.0
    port: int = 8000  # where `relay serve` listens (--port wins) and `relay send` posts
    log_format: str = "text"  # text, or json: one JSON object per log line
    # a folder shared by one machine's processes, so that /metrics adds them all up
    # (prometheus_client reads it too; `relay serve` sets one for its children)
    metrics_dir: str = ""
    # Alerts (relay/alerts/, docs/operations.md "Alerts"): where they go, and when.
    alert_url: str = field(default="", repr=False)  # a Slack incoming webhook or any URL
    alert_format: str = "auto"  # auto (Slack's for hooks.slack.com, else JSON), slack, json
    alert_email: str = ""  # addresses, comma-separated, sent through RELAY_SMTP_URL
    smtp_url: str = field(default="", repr=False)  # smtp://user:pass@host:port, smtps://...
    alert_from: str = ""  # the sender of alert mail (default: relay@<the SMTP host>)
    alert_every: str = "15m"  # at most one message per condition (dead group) this often
    alert_window: str = "15m"  # the recent attempts the failure rate and 401s are read over
    alert_failure_rate: float = 0.25  # alert above this share of failed recent attempts
    alert_min_attempts: int = 20  # ... once there are at least this many of them
    alert_queue_age: str = "15m"  # alert when the oldest pending delivery is older
    # the processes `relay serve` starts leave the start-up summary (what loaded, what waits
    # on a secret) to it: it is said once, not once per process
    quiet_start: bool = False
    # the console's playground may write mapping files into the mappings folder (Save)
    playground_write: bool = False

    # field -> environment variable; every other field is RELAY_<FIELD>
    _NAMES: ClassVar[dict[str, str]] = {
        "database_url": "DATABASE_URL",
        "admin_token": "RELAY_ADMIN_TOKEN",
        "secret_key": "RELAY_SECRET_KEY",
        "port": "PORT",
        "metrics_dir": "PROMETHEUS_MULTIPROC_DIR",
    }
    _CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {"log_format": ("text", "json"),
                                                      "alert_format": ("auto", "slack", "json")}
    _ZERO_ALLOWED: ClassVar[frozenset[str]] = frozenset({"capture_refresh"})  # numbers >= 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from `env` (the process's environment by default). Every bad variable is
        reported at once, one per line, each with its name and what it expects."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        problems: list[str] = []
        for f in fields(cls):
            name = cls.variable(f.name)
            raw = env.get(name)
            if raw in (None, ""):
                continue
            try:
                values[f.name] = cls._parse(f.name, type(f.default), raw)
            except ValueError as exc:
                problems.append(f"{name}={raw!r}: {exc}")
        retention = values.get("retention")
        if isinstance(retention, str):
            try:
                parse_duration(retention, "RELAY_RETENTION")
            except RelayError as exc:
                problems.append(str(exc))
        settings = cls(**values)  # type: ignore[arg-type]
        try:
            settings.check_admin_token()
        except RelayError as exc:
            problems.append(str(exc))
        problems += settings.alert_problems()
        if problems:
            raise RelayError("\n".join(problems) if len(problems) == 1 else
                             "the configuration has problems:\n  " + "\n  ".join(problems))
        return settings

    @classmethod
    def variable(cls, field_name: str) -> str:
        """The environment variable a field is read from."""
        return cls._NAMES.get(field_name, f"RELAY_{field_name.upper()}")

    @classmethod
    def _parse(cls, field_name: str, kind: type, raw: str) -> object:
        """One variable's value as its field's type; ValueError saying what it expects."""
        if kind is bool:
            value = _BOOLEANS.get(raw.strip().lower())
            if value is None:
                raise ValueError("expected true or false")
            return value
        if kind in (int, float):
            try:
                number = kind(raw)
            except ValueError:
                number = None
            zero = field_name in cls._ZERO_ALLOWED
            if number is None or not (number >= 0 if zero else number > 0):
                expected = "a whole number" if kind is int else "a number"
                bound = "of 0 or more" if zero else "greater than 0"
                raise ValueError(f"expected {expected} {bound}")
            return number
        choices = cls._CHOICES.get(field_name)
        if choices and raw.strip().lower() not in choices:
            raise ValueError(f"expected {' or '.join(choices)}")
        return raw.strip().lower() if choices else raw

    def alert_problems(self) -> list[str]:
        """What is wrong with the alert settings, each naming its variable."""
        from relay.alerts.targets import problems  # the alerts parse their own targets

        return problems(self)

    def safe_database_url(self) -> str:
        """DATABASE_URL without its password, for messages."""
        from sqlalchemy.engine import make_url

        return make_url(self.database_url).render_as_string(hide_password=True)

    def check_admin_token(self) -> None:
        """RelayError when RELAY_ADMIN_TOKEN is set but short enough to be guessed."""
        if self.admin_token and len(self.admin_token) < MIN_TOKEN:
            raise RelayError(
                f"RELAY_ADMIN_TOKEN is {len(self.admin_token)} characters; it needs at "
                f"least {MIN_TOKEN}, so that it cannot be guessed. Make one with: python3 -c "
                "'import secrets; print(secrets.token_urlsafe(32))'")
