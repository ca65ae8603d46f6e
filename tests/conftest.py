"""Shared fixtures: mapping files written on the fly, and the example mappings folder."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from relay.sources import load_endpoint
from relay.store import open_store
from tests.support.fake_engati import FakeEngati

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = ROOT / "mappings"

MINIMAL = """
phone: body.phone
flows:
  - flow_key: ABC
"""


@pytest.fixture
def write_mapping(tmp_path):
    """Write a mapping file (dedented) and return its path."""

    def write(text: str = MINIMAL, name: str = "leads") -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def engati():
    """A real HTTP server on 127.0.0.1 standing in for Engati; set its `handler`."""
    fake = FakeEngati().start()
    yield fake
    fake.stop()


@pytest.fixture
def receiver():
    """A real HTTP server on 127.0.0.1 taking alerts (tests/support/alerts.py)."""
    from tests.support.alerts import HttpReceiver

    http = HttpReceiver().start()
    yield http
    http.stop()


@pytest.fixture
def smtp():
    """A real SMTP server on 127.0.0.1 (aiosmtpd) with a login, alerts:smtp-pass-77; its
    module needs tests.support.alerts.SMTP_WARNINGS."""
    from tests.support.alerts import SmtpReceiver

    server = SmtpReceiver(login=("alerts", "smtp-pass-77")).start()
    yield server
    server.stop()


@pytest.fixture
def endpoint(write_mapping):
    """Load an endpoint from mapping YAML text, with no environment variables set."""

    def load(text: str = MINIMAL, env: dict[str, str] | None = None, name: str = "leads"):
        return load_endpoint(write_mapping(text, name=name), env=env or {})

    return load


@pytest.fixture
def mapping(endpoint):
    """Load a mapping from YAML text (with its preset's defaults), no environment set."""

    def load(text: str = MINIMAL, env: dict[str, str] | None = None):
        return endpoint(text, env).mapping

    return load


POSTGRES_URL = os.environ.get(
    "RELAY_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def postgres_reason() -> str | None:
    """Why PostgreSQL tests cannot run here, or None when a server answers."""
    try:
        engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # any failure to connect means: skip, and say why
        return f"no PostgreSQL at {POSTGRES_URL} ({type(exc).__name__}); set RELAY_TEST_POSTGRES"
    return None


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh, empty database: SQLite always, PostgreSQL when a server answers."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'relay.db'}"
        return
    reason = postgres_reason()
    if reason:
        pytest.skip(reason)
    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    engine.dispose()
    yield POSTGRES_URL


@pytest.fixture
def store(database_url):
    """A store with its schema created."""
    store = open_store(database_url, timeout=0.5)
    store.upgrade()
    yield store
    store.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """A fresh database for a cluster of processes: SQLite, and PostgreSQL when it answers."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'relay.db'}"
    reason = postgres_reason()
    if reason:
        pytest.skip(reason)
    return fresh_postgres("relay_reliability")


def fresh_postgres(name: str) -> str:
    """The URL of a new, empty PostgreSQL database `name` (dropped first if it exists),
    named after RELAY_TEST_POSTGRES's database too, so that test runs given different
    databases never share one."""
    url = sa.engine.make_url(POSTGRES_URL)
    name = f"{url.database}_{name}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)
