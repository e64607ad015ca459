"""How many refusals the audit log takes: a token bucket per proxy (one session), pure.

Each refused connection is closed after its answer, so a connection carries at most one
refusal; what must be bounded is the rate of refused connections. Within `burst` (refilled at
`rate` per second) a refusal is answered and written as usual. Past it, the connection is
closed unanswered and only counted: one line says the limit was reached, one line later says
how many were not written (when the bucket has room again, or at shutdown).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum


class Verdict(Enum):
    WRITE = "write"  # answer and audit as usual
    LIMIT = "limit"  # the first one over: write the one "limit reached" line, then close
    DROP = "drop"  # over the limit: close unanswered, count only


@dataclass(slots=True)
class Throttle:
    clock: Callable[[], float]
    rate: float = 20.0  # refusals per second, sustained
    burst: float = 200.0
    dropped: int = 0  # not written since the last summary
    _tokens: float = field(default=-1.0)
    _last: float = 0.0

    def admit(self) -> tuple[Verdict, int]:
        """(verdict, refusals not written before this one: write a summary line when > 0)."""
        now = self.clock()
        if self._tokens < 0:
            self._tokens, self._last = self.burst, now
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            dropped, self.dropped = self.dropped, 0
            return Verdict.WRITE, dropped
        self.dropped += 1
        return (Verdict.LIMIT if self.dropped == 1 else Verdict.DROP), 0

    def flush(self) -> int:
        """At shutdown: how many were not written (and reset)."""
        dropped, self.dropped = self.dropped, 0
        return dropped
