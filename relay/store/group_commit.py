"""Group commit: many concurrent webhooks to one transaction, and SQLite's writer queue."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from typing import Any

from relay.errors import StoreUnavailable


class WriterQueue:
    """Our own processes queue for SQLite's write lock in the kernel (flock on a file beside
    the database), waking the moment it is free. Without it they poll: SQLite's busy handler
    sleeps 1, 2, 5 ... up to 100 ms between tries, and a few busy processes spend more time
    asleep than writing. Writers from elsewhere still meet SQLite's own busy timeout."""

    def __init__(self, path: str, timeout: float):
        self.path = path
        self.timeout = timeout
        self._threads = threading.Lock()  # flock does not exclude threads sharing one file
        self._file: int | None = None
        self._pid = 0

    def __enter__(self) -> None:
        if not self._threads.acquire(timeout=self.timeout):
            raise StoreUnavailable(f"the database is busy: no write turn in {self.timeout:g}s")
        try:
            if self._pid != os.getpid():  # a forked process opens its own, or shares its lock
                self._file = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                self._pid = os.getpid()
            assert self._file is not None
            fcntl.flock(self._file, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *_exc: object) -> None:
        assert self._file is not None
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._threads.release()


class GroupCommit:
    """Writes what concurrent threads hand in, many to a transaction.

    A commit is a sync to disk, and SQLite lets one writer in at a time: one transaction per
    batch turns a crowd of request threads, each waiting for its own sync, into one sync for
    all that arrived meanwhile. The thread that finds no batch in progress writes one (it
    leads); those arriving meanwhile wait, and the first of them leads the next batch. No
    writer thread: the leader's own webhook needs no hand-over at all.
    """

    def __init__(self, write: Callable[[list[Any]], list[Any]], limit: int = 256):
        self._write = write
        self._limit = limit
        self._lock = threading.Lock()
        self._waiting: list[_Turn] = []
        self._writing = False

    def submit(self, item: Any) -> Any:
        """Hand in one item; its result once committed (or raise what stopped it)."""
        turn = _Turn(item)
        with self._lock:
            self._waiting.append(turn)
            leads = not self._writing
            self._writing = True
        if not leads:
            turn.ready.acquire()  # until a leader wrote it, or passed the lead on
        if turn.result is _LEAD:
            self._lead()
        if isinstance(turn.result, Exception):
            raise turn.result
        return turn.result

    def submit_many(self, items: list[Any]) -> list[Any]:
        """Hand in several items at once; each one's result, or the exception that stopped
        it (returned, not raised), once all are committed."""
        if not items:  # nothing to lead with: the lead would never be passed on
            return []
        turns = [_Turn(item) for item in items]
        with self._lock:
            self._waiting.extend(turns)
            leads = not self._writing
            self._writing = True
        for n, turn in enumerate(turns):
            if n or not leads:
                turn.ready.acquire()  # written by a leader (perhaps this thread), or to lead
            if turn.result is _LEAD:
                self._lead()
        return [turn.result for turn in turns]

    def _lead(self) -> None:
        with self._lock:
            batch, self._waiting = self._waiting[:self._limit], self._waiting[self._limit:]
        try:
            results = self._write([turn.item for turn in batch])
        except Exception as exc:
            results = [exc] * len(batch)
        with self._lock:
            if self._waiting:
                self._waiting[0].result = _LEAD
                self._waiting[0].ready.release()
            else:
                self._writing = False
        for turn, result in zip(batch, results, strict=True):
            turn.result = result
            turn.ready.release()


_LEAD = object()  # what a waiting thread is handed when it is to write the next batch


class _Turn:
    __slots__ = ("item", "ready", "result")

    def __init__(self, item: Any):
        self.item = item
        self.result: Any = _LEAD  # the first thread in leads at once
        self.ready = threading.Lock()
        self.ready.acquire()
