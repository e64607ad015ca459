"""Budget arithmetic for one session: pure functions over frozen totals."""

from __future__ import annotations

from dataclasses import dataclass

from .providers import Price
from .usage import Usage


@dataclass(frozen=True, slots=True)
class Limits:
    """None = unlimited. Defaults: 1M tokens, 30 minutes, $5."""

    tokens: int | None = 1_000_000
    requests: int | None = None
    seconds: float | None = 30 * 60
    cost_usd: float | None = 5.0


@dataclass(frozen=True, slots=True)
class Totals:
    started: float  # monotonic clock at session start
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def exhausted(limits: Limits, totals: Totals, now: float) -> str | None:
    """The name and figures of the first exhausted budget, or None if a request may go."""
    if limits.tokens is not None and totals.tokens >= limits.tokens:
        return f"token budget exhausted ({totals.tokens} of {limits.tokens} tokens used)"
    if limits.requests is not None and totals.requests >= limits.requests:
        return f"request budget exhausted ({totals.requests} of {limits.requests} requests)"
    if limits.seconds is not None and now - totals.started >= limits.seconds:
        return f"wall-clock budget exhausted ({limits.seconds:.0f} s since the session started)"
    if limits.cost_usd is not None and totals.cost_usd >= limits.cost_usd:
        return f"cost budget exhausted (${totals.cost_usd:.4f} of ${limits.cost_usd:.2f})"
    return None


def cost(usage: Usage, price: Price) -> float:
    return (usage.input_tokens * price.input + usage.output_tokens * price.output) / 1_000_000


# Built directly, not with dataclasses.replace: these run on every request, and replace()
# introspects the fields each time.
def count_request(totals: Totals) -> Totals:
    t = totals
    return Totals(t.started, t.requests + 1, t.input_tokens, t.output_tokens, t.cost_usd)


def add_usage(totals: Totals, usage: Usage, price: Price) -> Totals:
    t = totals
    return Totals(
        t.started,
        t.requests,
        t.input_tokens + usage.input_tokens,
        t.output_tokens + usage.output_tokens,
        t.cost_usd + cost(usage, price),
    )
