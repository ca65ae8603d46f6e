"""The worker's way to the database: every store call on one thread of its own.

One thread, not a pool: writers in one process would otherwise contend for SQLite's lock,
and its busy handler makes the loser sleep for milliseconds. Off the event loop, so that a
slow commit never stalls the calls in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from relay.store import Store

T = TypeVar("T")


class StoreThread:
    def __init__(self, store: Store):
        self.store = store
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="relay-store")

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` (a method of the store) on the store's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
