"""The operator's commands: events, show, replay, purge."""

from __future__ import annotations

import json
import os
import time

import pytest
from click.testing import CliRunner

from relay.cli import main
from relay.errors import FieldError
from relay.mapping import Delivery, Result
from relay.model import Attempt, Received
from relay.store import open_store
from relay.store.display import utc_text

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


class TestScheduledAndCancelled:
    """`relay events` and `relay show` say what is scheduled and what was cancelled;
    `relay send-now` and `relay cancel` act on pending deliveries."""

    @pytest.fixture
    def scheduled(self, db):
        """Event 1 with a delivery due in an hour (cancel key chk-1), event 2 due at once."""
        now = time.time()
        first = db.accept(Received("leads", b"{}", {}, {}, Result((Delivery(
            "F", "whatsapp", "919812345678", {}, "a", send_at=now + 3600, why="delay 1h",
            cancel_key="chk-1"),)), now)).event_id
        second = db.accept(Received("leads", b"{}", {}, {}, planned("b"), now)).event_id
        return first, second, now + 3600

    def test_events_show_the_scheduled_time(self, scheduled):
        first, _, at = scheduled
        lines = run("events").output.splitlines()
        row = next(line for line in lines if line.split()[0] == str(first))
        assert " scheduled " in row and f"the first for {utc_text(at)} UTC" in row
        listed = run("events", "--status", "scheduled", "--json").output.splitlines()
        assert [(e["id"], e["state"], e["scheduled_at"]) for e in map(json.loads, listed)] == [
            (first, "scheduled", at)]

    def test_show_says_when_why_and_the_cancel_key(self, scheduled):
        first, _, at = scheduled
        output = run("show", first).output
        assert "status scheduled" in output and "-> scheduled after 0 attempt(s)" in output
        assert f"scheduled for {utc_text(at)} UTC (delay 1h)" in output
        assert "cancel key: chk-1" in output

    def test_cancel_then_it_shows_cancelled(self, db, scheduled):
        first, _, _ = scheduled
        (d,) = db.event(first)["deliveries"]
        result = run("cancel", d["id"])
        assert (result.exit_code, result.output) == (0, f"delivery {d['id']}: cancelled\n")
        output = run("show", first).output
        assert "status cancelled" in output and "cancelled by an operator" in output
        assert "1 cancelled; cancelled by an operator" in run("events").output
        listed = run("events", "--status", "cancelled", "--json").output.splitlines()
        assert [json.loads(line)["id"] for line in listed] == [first]
        again = run("cancel", d["id"])
        assert again.exit_code == 1
        assert f"delivery {d['id']}: already cancelled by an operator" in again.output

    def test_send_now_makes_it_due(self, db, scheduled):
        first, _, _ = scheduled
        (d,) = db.event(first)["deliveries"]
        result = run("send-now", d["id"])
        assert (result.exit_code, result.output) == (0, f"delivery {d['id']}: due now\n")
        (claimed, _) = db.claim("w", 5, time.time(), 60)
        assert claimed.id == d["id"]
        assert "schedule: sent now by an operator" in run("show", first).output

    def test_in_flight_and_unknown_ones_fail_with_why(self, db, scheduled):
        """Each id is tried; any refused makes the exit status 1, saying why."""
        _, second, _ = scheduled
        (d,) = db.event(second)["deliveries"]
        db.claim("w", 5, time.time(), 60)  # in flight now
        result = run("send-now", d["id"], 999)
        assert result.exit_code == 1
        assert f"delivery {d['id']}: in flight" in result.output
        assert "delivery 999: no such delivery" in result.output
        assert "2 of 2 deliveries not changed" in result.output
        assert run("cancel").exit_code == 2  # an id is needed
