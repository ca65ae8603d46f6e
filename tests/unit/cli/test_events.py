"""The operator's commands: events, show, replay, purge."""

from __future__ import annotations

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
