"""Refused requests, counted: a row per mapping, minute and kind of refusal.

A forged request must not cost what a good webhook costs. Refusals are added up in memory
and written by the next transaction that commits anyway (a batch of accepted webhooks), or
on their own at most once every FLUSH_EVERY seconds when no webhook comes: a flood of forged
posts adds no commit a good webhook waits for, and at most KINDS rows per mapping a minute.
The counts are best effort: a process that dies loses the last few seconds of them.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from relay.store.rows import storable

FLUSH_EVERY = 5.0  # seconds between commits of their own, at most
KINDS = 20  # kinds of refusal per mapping a minute; more are counted as "other"
SAMPLE = 300  # characters of the sample reason kept

# The same statement on SQLite and PostgreSQL, named parameters for both drivers.
UPSERT = (
    "INSERT INTO refusal_counts (mapping, minute, kind, count, sample, last_at) "
    "VALUES (:mapping, :minute, :kind, :count, :sample, :last_at) "
    "ON CONFLICT (mapping, minute, kind) DO UPDATE SET "
    "count = refusal_counts.count + excluded.count, last_at = excluded.last_at")

_QUOTED = re.compile(r"['\"].*")  # a quoted value runs to the end: its quotes may be escaped
_VARIABLE = re.compile(r"\d+|https?://\S*")


def kind_of(reason: str) -> str:
    """The reason without what the request put in it (quoted values, numbers, URLs), so
    that one kind of refusal is one row however the forgeries vary."""
    return _VARIABLE.sub("…", _QUOTED.sub("…", reason))[:100]


class RefusalCounter:
    """Refusals of this process not yet written, and when they were last written."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, int, str], dict[str, Any]] = {}
        self._kinds: dict[tuple[str, int], set[str]] = {}  # kinds seen, this minute
        self._flushed = 0.0

    def add(self, mapping: str, reason: str, now: float) -> tuple[bool, bool]:
        """Count one refusal: (whether it is time to write them, none having been written
        for a while; whether it is the first of its kind for the mapping this minute)."""
        minute = int(now // 60)
        kind = kind_of(reason)
        with self._lock:
            seen = self._kinds.setdefault((mapping, minute), set())
            if kind not in seen and len(seen) >= KINDS:
                kind = "other"
            first = kind not in seen
            seen.add(kind)
            key = (mapping, minute, kind)
            row = self._pending.get(key)
            if row is None:
                self._pending[key] = {"mapping": mapping, "minute": minute, "kind": kind,
                                      "count": 1, "sample": storable(reason[:SAMPLE]),
                                      "last_at": now}
            else:
                row["count"] += 1
                row["last_at"] = now
            due = now - self._flushed >= FLUSH_EVERY
            if due:  # this caller writes them: the others need not queue to do the same
                self._flushed = now
            return due, first

    def take(self, now: float) -> list[dict[str, Any]]:
        """The rows to write, handed over once."""
        with self._lock:
            rows, self._pending = list(self._pending.values()), {}
            self._flushed = now
            minute = int(now // 60)
            self._kinds = {k: v for k, v in self._kinds.items() if k[1] >= minute}
        return rows
