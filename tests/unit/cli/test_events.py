"""The operator's commands: events, show, replay, purge."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from relay.cli import main
from relay.errors import FieldError
from relay.mapping import Delivery, Result
from relay.model import Attempt, Received
from relay.store import open_store

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


class TestEventsSearch:
    @pytest.fixture
    def found(self, db, tmp_path, monkeypatch):
        """Two events in the database, a mapping of region IN in the folder."""
        (tmp_path / "mappings").mkdir()
        (tmp_path / "mappings" / "leads.yaml").write_text(
            "phone: {path: body.phone, region: IN}\nflows: [{flow_key: F}]\n")
        monkeypatch.setenv("RELAY_MAPPINGS", str(tmp_path / "mappings"))
        asha = db.accept(Received("leads", b'{"email": "asha@example.com"}', {}, {}, Result(
            (Delivery("F", "whatsapp", "919822012345", {}),)), NOW)).event_id
        ravi = db.accept(Received("leads", b'{"email": "ravi@example.com"}', {}, {}, Result(
            (Delivery("F", "whatsapp", "919812345678", {}),)), NOW + 10)).event_id
        return asha, ravi

    def test_json_lines_newest_first(self, found):
        """--json prints one JSON object per line, with the state the table shows."""
        asha, ravi = found
        result = run("events", "--json")
        lines = [json.loads(line) for line in result.output.splitlines()]
        assert [(e["id"], e["state"]) for e in lines] == [(ravi, "pending"), (asha, "pending")]
        assert lines[0]["mapping"] == "leads" and lines[0]["received_at"] == NOW + 10

    @pytest.mark.parametrize("typed", ["+91 98220 12345", "09822012345", "9822012345"])
    def test_phone_in_any_format(self, found, typed):
        asha, _ = found
        result = run("events", "--json", "--phone", typed)
        assert [json.loads(line)["id"] for line in result.output.splitlines()] == [asha]

    def test_text_and_since(self, found):
        _, ravi = found
        result = run("events", "--json", "-q", "RAVI@")
        assert [json.loads(line)["id"] for line in result.output.splitlines()] == [ravi]
        assert run("events", "--since", "2020-01-01", "--json").output.count("\n") == 2
        assert run("events", "--since", "24h").output == "no events\n"  # NOW is long ago

    @pytest.mark.parametrize(("args", "message"), [
        (("--since", "yesterday"), "--since='yesterday': use 24h, 7d, 30m or a date"),
        (("-q", "ab"), "search for at least 3 characters")])
    def test_bad_input_is_a_usage_error(self, found, args, message):
        result = run("events", *args)
        assert result.exit_code == 2 and message in result.output


def test_a_dotenv_file_fills_in_what_the_environment_does_not_set(db, tmp_path, monkeypatch):
    """.env in the working directory is read; a variable set in the environment wins."""
    db.accept(Received("leads", b"{}", {}, {}, planned("a"), NOW))
    empty = tmp_path / "empty"
    empty.mkdir()
    other = open_store(f"sqlite:///{empty / 'relay.db'}")
    other.upgrade()
    other.dispose()
    (tmp_path / ".env").write_text(f"DATABASE_URL=sqlite:///{empty / 'relay.db'}\n"
                                   "RELAY_MAPPINGS=from-dotenv\n")
    monkeypatch.chdir(tmp_path)
    # Set, then unset: monkeypatch then restores it after the test, whatever .env set.
    monkeypatch.setenv("RELAY_MAPPINGS", "unset")
    monkeypatch.delenv("RELAY_MAPPINGS")
    # DATABASE_URL is set (by `db`): the environment's database, not the .env's empty one.
    assert "leads" in run("events").output
    assert os.environ["RELAY_MAPPINGS"] == "from-dotenv"  # the .env's, unset before
    monkeypatch.delenv("DATABASE_URL")
    assert run("events").output == "no events\n"  # now the .env's
