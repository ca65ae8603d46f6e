"""Settings from the environment: defaults, overrides and clear errors."""

from __future__ import annotations

import pytest

from relay.config import Settings
from relay.errors import RelayError


def test_defaults():
    """With nothing set, the embedded defaults apply."""
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite:///relay.db"
    assert (settings.concurrency, settings.retry_base, settings.retry_cap) == (32, 2.0, 3600.0)
    assert settings.max_body == 1024 * 1024


def test_environment_overrides():
    """DATABASE_URL and RELAY_<NAME> set the fields, typed."""
    settings = Settings.from_env({"DATABASE_URL": "sqlite:///x.db", "RELAY_CONCURRENCY": "256",
                                  "RELAY_LEASE": "30.5", "RELAY_MAPPINGS": "hooks"})
    assert (settings.database_url, settings.concurrency, settings.lease, settings.mappings) == (
        "sqlite:///x.db", 256, 30.5, "hooks")


@pytest.mark.parametrize(("name", "value"), [("RELAY_CONCURRENCY", "lots"),
                                             ("RELAY_CONCURRENCY", "0"),
                                             ("RELAY_RETRY_BASE", "-1")])
def test_invalid_values_name_the_variable(name, value):
    """A bad value is an error naming the variable and what it expects."""
    with pytest.raises(RelayError, match=f"{name}='{value}': expected a .*number greater than 0"):
        Settings.from_env({name: value})


def test_durations():
    """Durations read as 30d, 12h, 15m, 90s; anything else is refused, naming the setting."""
    from relay.config import parse_duration

    assert [parse_duration(t) for t in ("30d", "12h", "15m", "90s", "1.5h")] == [
        2592000, 43200, 900, 90, 5400]
    with pytest.raises(RelayError, match="RELAY_RETENTION='30 days'"):
        Settings.from_env({"RELAY_RETENTION": "30 days"})


def test_json_log_lines():
    """RELAY_LOG_FORMAT=json: each log line is one JSON object."""
    import json
    import logging

    from relay.logs import JsonFormatter

    record = logging.LogRecord("relay.inbound", logging.INFO, __file__, 1,
                               "inbound mapping=%s status=%d", ("leads", 202), None)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "inbound mapping=leads status=202"
    assert (line["level"], line["logger"]) == ("info", "relay.inbound")
    assert line["time"].endswith("+00:00")


def test_since():
    """--since and the console's filter: a duration before now, or a UTC date."""
    from relay.config import parse_since

    assert parse_since("2h", 10_000.0) == 2800.0
    assert parse_since("2026-11-01", 0) == 1793491200.0
    with pytest.raises(RelayError, match="use 24h, 7d, 30m or a date"):
        parse_since("last tuesday", 0)
