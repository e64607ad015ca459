"""Budget arithmetic for one session: pure functions over frozen totals, and one locked ledger.

A request is admitted only if what it may spend fits beside what is spent and reserved: its
output bound plus its input estimate (bounds.py) is reserved, together with the request count, in
one step under the session's lock. A request alone (nothing else reserved) is admitted while the
budget is not used up even if its bound is larger than what is left: a large output bound at an
expensive model's price can be more than a whole default budget, and refusing it would stop
every session; so spend passes a limit by at most one request's reservation. When the answer
ends, the reservation is settled: released, and what the vendor reported is charged instead
(`charge` says what is charged when the vendor's figures are missing or partial).
So concurrent requests cannot all pass one check and overshoot together.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .bounds import Bound
from .providers import Price
from .usage import Reading, Usage


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
    requests: int = 0  # admitted requests (counted when admitted)
    input_tokens: int = 0  # settled
    output_tokens: int = 0
    cost_usd: float = 0.0
    reserved_tokens: int = 0  # admitted, not yet settled
    reserved_cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def committed_tokens(self) -> int:
        return self.tokens + self.reserved_tokens

    @property
    def committed_cost_usd(self) -> float:
        return self.cost_usd + self.reserved_cost_usd


@dataclass(frozen=True, slots=True)
class Ask:
    """What one admitted request holds until it is settled."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    model: str | None = None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def cost(usage: Usage | Ask, price: Price) -> float:
    return (usage.input_tokens * price.input + usage.output_tokens * price.output) / 1_000_000


def ask(bound: Bound, price: Price) -> Ask:
    return Ask(
        bound.input_tokens,
        bound.output_tokens,
        (bound.input_tokens * price.input + bound.output_tokens * price.output) / 1_000_000,
        bound.model,
    )


def exhausted(limits: Limits, totals: Totals, now: float) -> str | None:
    """The name and figures of the first exhausted budget, or None if a request may go."""
    if limits.tokens is not None and totals.committed_tokens >= limits.tokens:
        held = f", {totals.reserved_tokens} reserved" if totals.reserved_tokens else ""
        return f"token budget exhausted ({totals.tokens} of {limits.tokens} tokens used{held})"
    if limits.requests is not None and totals.requests >= limits.requests:
        return f"request budget exhausted ({totals.requests} of {limits.requests} requests)"
    if limits.seconds is not None and now - totals.started >= limits.seconds:
        return f"wall-clock budget exhausted ({limits.seconds:.0f} s since the session started)"
    if limits.cost_usd is not None and totals.committed_cost_usd >= limits.cost_usd:
        held = f", ${totals.reserved_cost_usd:.4f} reserved" if totals.reserved_cost_usd else ""
        return f"cost budget exhausted (${totals.cost_usd:.4f} of ${limits.cost_usd:.2f}{held})"
    return None


def admit(limits: Limits, totals: Totals, request: Ask, now: float) -> Totals | str:
    """The totals with `request` counted and reserved, or why it may not go."""
    stop = exhausted(limits, totals, now)
    if stop is not None:
        return stop
    t = totals
    alone = not t.reserved_tokens and not t.reserved_cost_usd  # nothing else is in flight
    if (
        limits.tokens is not None
        and t.committed_tokens + request.tokens > limits.tokens
        and not alone
    ):
        return (
            f"token budget: this request may use {request.tokens} tokens (output bound "
            f"{request.output_tokens} + input estimate {request.input_tokens}), "
            f"{limits.tokens - t.committed_tokens} of {limits.tokens} left beside the requests in "
            "flight; lower its output limit or send it when they are done"
        )
    if (
        limits.cost_usd is not None
        and t.committed_cost_usd + request.cost_usd > limits.cost_usd
        and not alone
    ):
        return (
            f"cost budget: this request may cost ${request.cost_usd:.4f}, "
            f"${limits.cost_usd - t.committed_cost_usd:.4f} of ${limits.cost_usd:.2f} left beside "
            "the requests in flight; lower its output limit or send it when they are done"
        )
    # Built directly, not with dataclasses.replace: this runs on every request, and replace()
    # introspects the fields each time.
    return Totals(
        t.started,
        t.requests + 1,
        t.input_tokens,
        t.output_tokens,
        t.cost_usd,
        t.reserved_tokens + request.tokens,
        t.reserved_cost_usd + request.cost_usd,
    )


def settle(totals: Totals, request: Ask, charged: Usage, price: Price) -> Totals:
    """Release the reservation and charge what was spent."""
    t = totals
    return Totals(
        t.started,
        t.requests,
        t.input_tokens + charged.input_tokens,
        t.output_tokens + charged.output_tokens,
        t.cost_usd + cost(charged, price),
        max(0, t.reserved_tokens - request.tokens),
        max(0.0, t.reserved_cost_usd - request.cost_usd),
    )


def charge(request: Ask, reading: Reading, complete: bool, status: int) -> tuple[Usage, bool]:
    """What an answer is charged, and whether that is an estimate rather than the vendor's figures.

    - complete, read whole, the vendor reported usage: its figures, exactly;
    - complete, read whole, no usage: an error answer (not 2xx) costs nothing, a 2xx answer is
      charged its reservation (it could not be metered; fail closed);
    - complete but too large to read whole: the larger of what was found and the reservation;
    - cut (the agent hung up, the vendor broke off): the vendor's input figure if it sent one,
      else the estimate; output at least what streamed (content characters / 4), at most the
      bound, and never less than the vendor's own running count.
    """
    seen = reading.usage
    model = seen.model or request.model
    if complete and reading.exact:
        if seen.total:
            return seen, False
        if 200 <= status < 300 and request.tokens:
            return Usage(request.input_tokens, request.output_tokens, model), True
        return Usage(0, 0, model), False
    if complete:
        return (
            Usage(
                max(seen.input_tokens, request.input_tokens),
                max(seen.output_tokens, request.output_tokens),
                model,
            ),
            True,
        )
    streamed = min(reading.streamed_output_tokens, request.output_tokens)
    return (
        Usage(
            seen.input_tokens or request.input_tokens,
            max(seen.output_tokens, streamed),
            model,
        ),
        True,
    )


def unanswered(request: Ask, timed_out: bool) -> Usage:
    """No answer came: an unreachable vendor billed nothing; a silent one may be working (all)."""
    if timed_out:
        return Usage(request.input_tokens, request.output_tokens, request.model)
    return Usage(0, 0, request.model)


class Ledger:
    """One session's totals behind one lock: `admit` checks and reserves in one step."""

    def __init__(self, limits: Limits, started: float) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._totals = Totals(started=started)

    @property
    def totals(self) -> Totals:
        return self._totals

    def check(self, now: float) -> str | None:
        """A cheap early look (before the body is read); `admit` decides."""
        return exhausted(self.limits, self._totals, now)

    def admit(self, request: Ask, now: float) -> str | None:
        """None when admitted (counted and reserved), else why not."""
        with self._lock:
            outcome = admit(self.limits, self._totals, request, now)
            if isinstance(outcome, str):
                return outcome
            self._totals = outcome
            return None

    def settle(self, request: Ask, charged: Usage, price: Price) -> None:
        with self._lock:
            self._totals = settle(self._totals, request, charged, price)
