"""Login throttling: at most `limit` failed logins per key (a name and address pair, an address)
in a sliding window; bounded memory (the least recently failed keys are forgotten first).

Per gunicorn worker: with W workers an attacker gets W times the limit, which is still nothing
against a 256-bit token; the throttle is there to make guessing loud and slow, not to be the lock.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class Throttle:
    def __init__(
        self,
        limit: int,
        window_s: float,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window_s, self.max_keys, self.clock = limit, window_s, max_keys, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        found = self._failures.get(key)
        if found is None:
            return deque()
        while found and found[0] <= now - self.window_s:
            found.popleft()
        return found

    def blocked(self, key: str) -> bool:
        with self._lock:
            return len(self._recent(key, self.clock())) >= self.limit

    def failed(self, key: str) -> None:
        with self._lock:
            now = self.clock()
            recent = self._recent(key, now)
            recent.append(now)
            while len(recent) > self.limit:
                recent.popleft()  # only the last `limit` failures matter
            self._failures[key] = recent
            self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def __len__(self) -> int:
        return len(self._failures)
