"""Capture windows: opened by `relay capture NAME` or the console, kept in the database so
that every web process sees them.

The intake asks `OpenWindows.get(name)` for every webhook. It reads the open windows from
the database at most once every `every` seconds (one query a second per process, whatever
the traffic), so that a webhook for a mapping without a window costs a dict lookup, not a
query. A window opened or closed elsewhere is therefore seen up to `every` seconds late; the
store still checks that a window is open (and has room) when it takes a sample.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from relay.errors import RelayError, StoreUnavailable
from relay.sources.endpoint import valid_name
from relay.store import Store

log = logging.getLogger("relay.capture")

MAX_MINUTES = 24 * 60  # a window left open by mistake still closes within a day


def check_name(name: str) -> str:
    """`name`, or RelayError unless it could name a mapping file (sources.endpoint's rule)."""
    if not valid_name(name):
        raise RelayError(f"{name[:60]!r} cannot be an endpoint name: use letters, digits, "
                         "'-', '_' and '.' (at most 200), starting with a letter or digit")
    return name


def open_window(store: Store, name: str, minutes: float, now: float) -> dict[str, Any]:
    """Open (or reopen, with a fresh cap) the capture window of /hooks/<name>."""
    check_name(name)
    if not 0 < minutes <= MAX_MINUTES:
        raise RelayError(f"a window stays open between 1 second and {MAX_MINUTES} minutes, "
                         f"not {minutes:g}")
    return store.open_window(name, now, now + minutes * 60)


class OpenWindows:
    """The open windows by name, as last read from the store (see the module's docstring)."""

    def __init__(self, store: Store, every: float = 1.0):
        self.store = store
        self.every = every
        self._lock = threading.Lock()
        self._read_at = -float("inf")
        self._by_name: dict[str, dict[str, Any]] = {}

    def stale(self) -> bool:
        """Whether the next `get` reads the database (the event loop has it made in a
        thread)."""
        return time.monotonic() - self._read_at >= self.every

    def get(self, name: str) -> dict[str, Any] | None:
        now = time.monotonic()
        if now - self._read_at >= self.every:
            self._refresh(now)
        window = self._by_name.get(name)
        if window is not None and window["closes_at"] <= time.time():
            return None
        return window

    def _refresh(self, now: float) -> None:
        # One thread reads; the others go on with what was read last.
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._read_at = now
            try:
                windows = self.store.open_windows(time.time())
            except Exception as exc:  # webhooks go on without the windows
                why = exc if isinstance(exc, StoreUnavailable) else type(exc).__name__
                log.warning("cannot read the capture windows (keeping the last ones): %s", why)
                return
            self._by_name = {w["name"]: w for w in windows}
        finally:
            self._lock.release()
