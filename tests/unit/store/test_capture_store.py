"""Capture windows and samples in every backend (SQLite, PostgreSQL, the in-memory fake)."""

from __future__ import annotations

import threading

from tests.unit.store.helpers import everywhere

SAMPLE = {"method": "POST", "headers": {"content-type": "application/json"},
          "query": {"a": "1"}, "body": b'{"x": 1}\x00\xff', "signature": "unchecked"}


@everywhere
class TestWindows:
    def test_a_window_is_open_until_it_closes(self, any_store):
        window = any_store.open_window("leads", 100.0, 160.0)
        assert [w["name"] for w in any_store.open_windows(159.0)] == ["leads"]
        assert any_store.open_windows(160.0) == []
        assert window["taken"] == 0

    def test_reopening_closes_the_old_window_and_starts_a_fresh_cap(self, any_store):
        first = any_store.open_window("leads", 100.0, 1000.0)
        assert any_store.add_sample(first["id"], SAMPLE, 1, 101.0) is not None
        second = any_store.open_window("leads", 102.0, 1000.0)
        assert [w["id"] for w in any_store.open_windows(103.0)] == [second["id"]]
        assert any_store.add_sample(first["id"], SAMPLE, 1, 103.0) is None  # closed
        assert any_store.add_sample(second["id"], SAMPLE, 1, 103.0) is not None

    def test_opened_at_once_by_many_one_window_is_open(self, any_store):
        """Eight opens of one name at the same moment (double submits, two consoles): one
        open window, not several taking samples each."""
        start = threading.Barrier(8)

        def open_it():
            start.wait()
            any_store.open_window("leads", 100.0, 1000.0)

        threads = [threading.Thread(target=open_it) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(any_store.open_windows(101.0)) == 1

    def test_close(self, any_store):
        any_store.open_window("leads", 100.0, 1000.0)
        assert any_store.close_window("leads", 101.0)
        assert not any_store.close_window("leads", 102.0)
        assert any_store.open_windows(102.0) == []


@everywhere
class TestSamples:
    def test_a_sample_is_kept_byte_exact(self, any_store):
        window = any_store.open_window("leads", 100.0, 1000.0)
        sample_id = any_store.add_sample(window["id"], SAMPLE, 50, 101.0)
        found = any_store.sample(sample_id)
        assert found["body"] == SAMPLE["body"]
        assert (found["name"], found["headers"], found["query"], found["signature"]) == (
            "leads", SAMPLE["headers"], SAMPLE["query"], "unchecked")
        assert [(s["id"], s["size"]) for s in any_store.samples("leads")] == [
            (sample_id, len(SAMPLE["body"]))]
        assert "body" not in any_store.samples("leads")[0]  # a list carries no bodies
        assert any_store.samples("other") == []
        assert any_store.sample(sample_id + 1000) is None

    def test_the_cap_holds_under_concurrent_writers(self, any_store):
        """Eight threads post 40 samples into a window of 10: exactly 10 are kept."""
        window = any_store.open_window("leads", 100.0, 1000.0)
        kept = []

        def post():
            for _ in range(5):
                kept.append(any_store.add_sample(window["id"], SAMPLE, 10, 101.0))

        threads = [threading.Thread(target=post) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len([k for k in kept if k is not None]) == 10
        assert len(any_store.samples("leads", 100)) == 10
        assert any_store.open_windows(101.0)[0]["taken"] == 10

    def test_samples_go_a_week_after_their_window_closed(self, any_store):
        """Opening any window deletes windows closed over a week ago, with their samples."""
        old = any_store.open_window("old", 100.0, 200.0)
        assert any_store.add_sample(old["id"], SAMPLE, 50, 150.0) is not None
        any_store.open_window("new", 200.0 + 7 * 86400 - 1, 300.0 + 7 * 86400)
        assert len(any_store.samples("old")) == 1  # not yet a week
        any_store.open_window("newer", 201.0 + 7 * 86400, 300.0 + 7 * 86400)
        assert any_store.samples("old") == []

    def test_nothing_is_kept_after_the_window_closes(self, any_store):
        window = any_store.open_window("leads", 100.0, 200.0)
        assert any_store.add_sample(window["id"], SAMPLE, 50, 200.0) is None
        assert any_store.samples("leads") == []
