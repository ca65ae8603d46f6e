"""The intake's cache of open capture windows: one read of the store a second, whatever the
traffic, and a window opened elsewhere seen once the cache is re-read."""

from __future__ import annotations

import time

import pytest

from relay.capture.windows import OpenWindows, check_name, open_window
from relay.errors import RelayError, StoreUnavailable
from tests.support.fake_store import FakeStore


class CountingStore(FakeStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.down = False

    def open_windows(self, now: float) -> list[dict]:
        self.reads += 1
        if self.down:
            raise StoreUnavailable("the database is unavailable: gone")
        return super().open_windows(now)


def test_a_thousand_webhooks_cost_one_read():
    store = CountingStore()
    windows = OpenWindows(store, every=60)
    for _ in range(1000):
        assert windows.get("leads") is None
    assert store.reads == 1


def test_a_window_opened_elsewhere_is_seen_after_the_next_read():
    store = CountingStore()
    windows = OpenWindows(store, every=0.05)
    assert windows.get("leads") is None
    open_window(store, "leads", 1, time.time())
    deadline = time.monotonic() + 5
    while windows.get("leads") is None:
        assert time.monotonic() < deadline, "the window was never seen"
    assert windows.get("leads")["name"] == "leads"


def test_a_window_that_ran_out_is_closed_before_the_next_read():
    store = CountingStore()
    store.open_window("leads", time.time(), time.time() + 0.2)
    windows = OpenWindows(store, every=3600)
    assert windows.get("leads") is not None
    time.sleep(0.25)  # the window's own end, not a poll: the cache is never re-read here
    assert windows.get("leads") is None


def test_the_database_away_keeps_the_last_windows():
    store = CountingStore()
    store.open_window("leads", time.time(), time.time() + 60)
    windows = OpenWindows(store, every=0)
    assert windows.get("leads") is not None
    store.down = True
    assert windows.get("leads") is not None  # webhooks go on; the log says why


@pytest.mark.parametrize("name", ["", "../x", "a b", "-x", "x" * 201, "ñ"])
def test_names_a_mapping_file_cannot_have_are_refused(name):
    with pytest.raises(RelayError, match="cannot be an endpoint name"):
        check_name(name)


def test_a_window_is_open_for_at_most_a_day():
    with pytest.raises(RelayError, match="1440 minutes"):
        open_window(FakeStore(), "leads", 1441, time.time())
