"""The commands that run the relay: serve, worker, db upgrade; and DATABASE_URL as they read it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from relay.cli import main
from relay.errors import RelayError
from relay.store import database_url, open_store
from tests.support.live import Relay, answers, free_port, wait_for


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("given", ["postgres://u:p@h/db", "postgresql://u:p@h/db"])
def test_heroku_style_postgres_urls_mean_psycopg(given):
    """What hosts hand out is read with the driver the relay installs."""
    assert database_url(given) == "postgresql+psycopg://u:p@h/db"


def test_a_database_url_without_its_driver_is_one_line(monkeypatch):
    """A missing driver names what to install instead of a traceback."""
    with pytest.raises(RelayError, match="needs a driver that is not installed"):
        open_store("mysql://u@h/db")
    monkeypatch.setenv("DATABASE_URL", "mysql://u@h/db")
    result = run("events")
    assert result.exit_code == 1
    assert result.output.startswith("error: DATABASE_URL needs a driver")


def test_db_upgrade_says_what_it_did(tmp_path, monkeypatch):
    """On an empty database it says the schema was created, then that it is up to date."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    first = run("db", "upgrade")
    assert first.exit_code == 0, first.output
    assert first.output.startswith("schema created at revision ")
    assert run("db", "upgrade").output.startswith("schema is up to date at revision ")


@pytest.mark.reliability
def test_serve_warns_once_about_unset_engati_settings(tmp_path):
    """`relay serve` says at start-up, once for all its processes, that a mapping's Engati
    settings are unset and what happens to its deliveries."""
    folder = tmp_path / "mappings"
    folder.mkdir()
    (folder / "leads.yaml").write_text("source: generic\nverify: false\nphone: body.phone\n"
                                       "flows: [{flow_key: F}]\n")
    port = free_port()
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'relay.db'}", "RELAY_MAPPINGS": str(folder),
           "ENGATI_CUSTOMER_ID": "", "ENGATI_BOT_KEY": "", "ENGATI_API_KEY": ""}
    relay = Relay(["serve", "--port", str(port)], env, tmp_path / "serve.log")
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/readyz"), what="relay serve")
        # and its worker, which a SIGTERM before its handlers are in place would kill
        wait_for(lambda: "relay.worker worker" in relay.output(), what="the worker")
    finally:
        assert relay.stop() == 0, relay.output()[-2000:]
    lines = relay.output().splitlines()
    warnings = [line for line in lines if "Engati settings missing" in line]
    assert len(warnings) == 1, warnings
    assert "Engati settings missing for leads: set ENGATI_CUSTOMER_ID" in warnings[0]
    assert "go dead" in warnings[0]
    assert len([line for line in lines if "loaded 1 mapping(s)" in line]) == 1, lines

