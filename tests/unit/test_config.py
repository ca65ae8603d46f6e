"""Settings from the environment: defaults, overrides and clear errors."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

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


def test_capture_refresh_may_be_zero():
    """0 reads the capture windows for every webhook; below 0 is refused."""
    assert Settings.from_env({"RELAY_CAPTURE_REFRESH": "0"}).capture_refresh == 0
    with pytest.raises(RelayError, match="RELAY_CAPTURE_REFRESH='-1': expected a number of 0"):
        Settings.from_env({"RELAY_CAPTURE_REFRESH": "-1"})


def test_durations():
    """Durations read as 30d, 12h, 15m, 90s; anything else is refused, naming the setting."""
    from relay.config import parse_duration

    assert [parse_duration(t) for t in ("30d", "12h", "15m", "90s", "1.5h")] == [
        2592000, 43200, 900, 90, 5400]
    with pytest.raises(RelayError, match="RELAY_RETENTION='30 days'"):
        Settings.from_env({"RELAY_RETENTION": "30 days"})


def test_since():
    """--since and the console's filter: a duration before now, or a UTC date."""
    from relay.config import parse_since

    assert parse_since("2h", 10_000.0) == 2800.0
    assert parse_since("2026-11-01", 0) == 1793491200.0
    with pytest.raises(RelayError, match="use 24h, 7d, 30m or a date"):
        parse_since("last tuesday", 0)


def test_every_problem_is_reported_at_once():
    """Several bad variables: one error naming each, with what it expects, one per line."""
    with pytest.raises(RelayError) as raised:
        Settings.from_env({"RELAY_CONCURRENCY": "lots", "RELAY_LEASE": "0", "PORT": "http",
                           "RELAY_LOG_FORMAT": "xml", "RELAY_TRUST_PROXY": "maybe",
                           "RELAY_RETENTION": "a month", "RELAY_ADMIN_TOKEN": "short"})
    lines = str(raised.value).splitlines()
    assert lines[0] == "the configuration has problems:"
    assert [line.strip().split("=")[0].split(" ")[0] for line in lines[1:]] == [
        "RELAY_CONCURRENCY", "RELAY_LEASE", "RELAY_TRUST_PROXY", "PORT", "RELAY_LOG_FORMAT",
        "RELAY_RETENTION", "RELAY_ADMIN_TOKEN"]
    assert "  RELAY_LOG_FORMAT='xml': expected text or json" in lines
    assert "  RELAY_TRUST_PROXY='maybe': expected true or false" in lines


def test_the_variables_read_outside_the_relay_settings():
    """PORT, RELAY_LOG_FORMAT and PROMETHEUS_MULTIPROC_DIR are settings like the others."""
    settings = Settings.from_env({"PORT": "9000", "RELAY_LOG_FORMAT": "JSON",
                                  "PROMETHEUS_MULTIPROC_DIR": "/tmp/Metrics"})
    assert (settings.port, settings.log_format, settings.metrics_dir) == (
        9000, "json", "/tmp/Metrics")


def test_the_readme_lists_every_setting():
    """The README's settings table names every variable Settings reads."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for f in fields(Settings):
        assert f"| `{Settings.variable(f.name)}` |" in readme, f.name


def test_the_database_url_is_shown_without_its_password():
    settings = Settings(database_url="postgresql://relay:s3cret@db/relay")
    assert settings.safe_database_url() == "postgresql://relay:***@db/relay"
