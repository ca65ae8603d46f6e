"""How often a key (a client address, a mapping) may do something, in this process.

One limiter serves both limits of the web process: wrong admin tokens per client address
(auth.py) and webhooks per unverified mapping (intake.py). Kept in memory, per web process:
with N processes a key gets at most N x `limit` a window, and no process waits on a shared
counter; a restart forgets the counts.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable


class RateLimit:
    """At most `limit` hits per key in any `window` seconds (a sliding window: the times of
    the last `limit` hits are kept), for at most `max_keys` keys, the least recently hit
    forgotten first, so that memory stays bounded whatever keys come."""

    def __init__(self, limit: int, window: float = 60.0, *, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.max_keys, self.clock = limit, window, max_keys, clock
        self._hits: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> int:
        """Count a hit of `key` and answer 0 if it may act now; else count nothing and
        answer the whole seconds until it may (at least 1)."""
        with self._lock:
            now = self.clock()
            times = self._recent(key, now)
            if len(times) >= self.limit:
                return max(1, int(times[0] + self.window - now + 0.999))
            times.append(now)
            self._hits[key] = self._hits.pop(key, times)  # newest last
            while len(self._hits) > self.max_keys:
                del self._hits[next(iter(self._hits))]
            return 0

    def _recent(self, key: str, now: float) -> collections.deque[float]:
        """The key's hits still inside the window (a new, unremembered deque if none)."""
        times = self._hits.get(key, collections.deque(maxlen=self.limit))
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            self._hits.pop(key, None)
        return times
