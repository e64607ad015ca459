"""A circuit breaker for identical calls: a looping agent cannot hammer a tool.

Pure: the caller passes the current time in. Every attempt counts, refused ones too, so an
agent that keeps looping stays refused until it stops for a whole window.
"""

from __future__ import annotations

from collections import deque


class Breaker:
    def __init__(self, limit: int = 20, window_s: float = 60.0, max_keys: int = 10_000) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("breaker limit must be >= 1 and window > 0")
        self.limit = limit
        self.window_s = window_s
        self._max_keys = max_keys
        self._seen: dict[str, deque[float]] = {}

    def trip(self, key: str, now: float) -> bool:
        """Record one attempt; True if it is beyond the limit within the window."""
        times = self._seen.get(key)
        if times is None:
            if len(self._seen) >= self._max_keys:
                self._forget(now)
            times = self._seen[key] = deque()
        horizon = now - self.window_s
        while times and times[0] <= horizon:
            times.popleft()
        tripped = len(times) >= self.limit
        times.append(now)
        if len(times) > self.limit:  # keep memory bounded: only the newest `limit` matter
            times.popleft()
        return tripped

    def _forget(self, now: float) -> None:
        horizon = now - self.window_s
        for key in [k for k, t in self._seen.items() if not t or t[-1] <= horizon]:
            del self._seen[key]
        if len(self._seen) >= self._max_keys:  # all recent: drop the oldest half
            for key in sorted(self._seen, key=lambda k: self._seen[k][-1])[: self._max_keys // 2]:
                del self._seen[key]
