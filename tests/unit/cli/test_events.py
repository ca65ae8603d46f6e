"""The operator's commands as a new user meets them: show, purge, send, preview, and the
database URL (issue 12's items found by trying the relay as a new user would)."""

from __future__ import annotations

import http.server
import threading

import pytest
from click.testing import CliRunner

from relay.cli.main import main
from relay.errors import FieldError, RelayError
from relay.mapping import Delivery, Result
from relay.model import Attempt, Received
from relay.store import database_url, open_store
from tests.conftest import MAPPINGS
from tests.support.live import Relay, answers, free_port, wait_for

NOW = 1_700_000_000.0  # in the past: purge compares with the clock


@pytest.fixture
def db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    store = open_store(url)
    store.upgrade()
    yield store
    store.dispose()


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def planned(key: str) -> Result:
    return Result((Delivery("F", "whatsapp", "919812345678", {}, key),))


def test_show_counts_every_attempt_after_a_replay(db):
    """A replay resets the retry budget, not the history: `relay show` says the true total
    and the state the events list shows."""
    event_id = db.accept(Received("leads", b"{}", {}, {}, planned("a"), NOW)).event_id
    for i in range(3):
        (claimed,) = db.claim("w", 1, NOW + 10 * i + 1, 60)
        outcome = "dead" if i == 2 else "retry"
        db.record_many([Attempt(claimed.id, NOW + i, 1, outcome, 503, next_at=NOW)], "w",
                       NOW + 10 * i + 2)
    assert "status dead" in run("show", event_id).output
    db.replay(event_id, planned("a"), NOW + 100)
    (claimed,) = db.claim("w", 1, NOW + 101, 60)
    db.record_many([Attempt(claimed.id, NOW + 101, 1, "delivered", 200, 1000)], "w", NOW + 102)[0]
    output = run("show", event_id).output
    assert "-> delivered after 4 attempt(s)" in output
    assert "status delivered" in output


def test_purge_keeps_failed_events_unless_asked(db):
    """Failed events wait for a replay: kept by default, counted by --dry-run, purged with
    --include-failed; 0s is a valid age."""
    failed = db.accept(Received("leads", b"{}", {}, {},
                                Result(errors=(FieldError("phone", "x"),)), NOW)).event_id
    skipped = db.accept(Received("leads", b"{}", {}, {}, Result(skipped="filter"), NOW)).event_id
    dry = run("purge", "--older-than", "0s", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would purge 1 event(s)" in dry.output and "failed events kept" in dry.output
    assert db.event(skipped) is not None
    assert "purged 1 event(s)" in run("purge", "--older-than", "0s").output
    assert db.event(skipped) is None and db.event(failed) is not None
    assert "purged 1 event(s)" in run("purge", "--older-than", "0s", "--include-failed").output
    assert db.event(failed) is None


def test_preview_reads_standard_input_as_json(monkeypatch):
    """`echo 'not json' | relay preview m.yaml -` says the body is not JSON, not that it
    has no content type."""
    result = run("preview", MAPPINGS / "crm-leads.yaml", "-", input="not json")
    assert result.exit_code == 1
    assert "the body is not valid JSON" in result.output


def test_send_posts_a_sender_that_signs_nothing_as_it_is(monkeypatch):
    """Salesforce signs nothing: `relay send` posts the body unsigned (it used to crash)."""
    received: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        body = MAPPINGS / "examples" / "salesforce-two-leads.xml"
        result = run("send", "salesforce-leads", body, "--url",
                     f"http://127.0.0.1:{server.server_port}/hooks/salesforce-leads")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert result.exit_code == 0, result.output
    assert received == [body.read_bytes()]


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
        wait_for(lambda: "relay.delivery.worker worker" in relay.output(), what="the worker")
    finally:
        assert relay.stop() == 0, relay.output()[-2000:]
    warnings = [line for line in relay.output().splitlines() if "engati settings not set" in line]
    assert len(warnings) == 1, warnings
    assert "warning: leads: engati settings" in warnings[0] and "go dead" in warnings[0]
