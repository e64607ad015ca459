"""The builtin agent's budgets: tokens, steps, wall-clock time and estimated cost. Pure.

Each is optional (None: off); the defaults are 1M tokens, 200 steps, 30 minutes and $5. A step
is one model request. The loop checks `exhausted` before every model request and before every
`execute_code`; `deadline` is the hard end a running program or a waiting request is cut at.
The MITM's own budgets (mitm/budget.py) stay the outer wall: these stop the agent cleanly, with
a message saying which budget ended it, before that wall is reached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

NAMES = ("tokens", "steps", "seconds", "cost_usd")


@dataclass(frozen=True, slots=True)
class Budgets:
    tokens: int | None = 1_000_000
    steps: int | None = 200
    seconds: float | None = 30 * 60
    cost_usd: float | None = 5.0


@dataclass(frozen=True, slots=True)
class Spent:
    started: float  # monotonic seconds
    input_tokens: int = 0
    output_tokens: int = 0
    steps: int = 0
    cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, input_tokens: int, output_tokens: int, cost_usd: float) -> Spent:
        """One more model request, with what its answer reported."""
        return replace(
            self,
            input_tokens=self.input_tokens + input_tokens,
            output_tokens=self.output_tokens + output_tokens,
            steps=self.steps + 1,
            cost_usd=self.cost_usd + cost_usd,
        )


@dataclass(frozen=True, slots=True)
class Exhausted:
    budget: str  # one of NAMES
    message: str


def exhausted(budgets: Budgets, spent: Spent, now: float) -> Exhausted | None:
    """The first budget that is used up, or None when the agent may go on."""
    if budgets.tokens is not None and spent.tokens >= budgets.tokens:
        return Exhausted(
            "tokens", f"token budget exhausted ({spent.tokens} of {budgets.tokens} tokens)"
        )
    if budgets.steps is not None and spent.steps >= budgets.steps:
        return Exhausted("steps", f"step budget exhausted ({spent.steps} of {budgets.steps} steps)")
    elapsed = now - spent.started
    if budgets.seconds is not None and elapsed >= budgets.seconds:
        return Exhausted(
            "seconds",
            f"time budget exhausted ({elapsed:.1f} of {budgets.seconds:g} seconds)",
        )
    if budgets.cost_usd is not None and spent.cost_usd >= budgets.cost_usd:
        return Exhausted(
            "cost_usd",
            f"cost budget exhausted ({_usd(spent.cost_usd)} of {_usd(budgets.cost_usd)} estimated)",
        )
    return None


def _usd(value: float) -> str:
    return f"${value:.2f}" if value >= 1 else f"${value:.4f}"


def deadline(budgets: Budgets, spent: Spent) -> float | None:
    """The monotonic time the wall-clock budget ends (None: no time budget)."""
    return None if budgets.seconds is None else spent.started + budgets.seconds


class BudgetError(ValueError):
    """A budget setting we do not understand; the message says which and why."""


_DURATION = re.compile(r"(?P<n>\d+(?:\.\d+)?)(?P<unit>s|m|h)?")
_UNITS = {None: 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse(spec: str, base: Budgets = Budgets()) -> Budgets:
    """`tokens=500000,steps=50,seconds=10m,cost_usd=2.5`; `off` switches one off.

    Names not given keep `base`'s value. Every value must be positive.
    """
    values: dict[str, int | float | None] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        name, sep, raw = item.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or name not in NAMES:
            raise BudgetError(
                f"budget {item!r}: expected NAME=VALUE, NAME one of {', '.join(NAMES)}"
            )
        if name in values:
            raise BudgetError(f"budget {name} is given twice")
        values[name] = None if raw == "off" else _value(name, raw)
    return replace(base, **values)  # type: ignore[arg-type]


def _value(name: str, raw: str) -> int | float:
    try:
        if name in ("tokens", "steps"):
            value: int | float = int(raw)
        elif name == "seconds":
            found = _DURATION.fullmatch(raw)
            if found is None:
                raise ValueError(raw)
            value = float(found["n"]) * _UNITS[found["unit"]]
        else:
            value = float(raw.removeprefix("$"))
    except ValueError:
        raise BudgetError(f"budget {name}={raw!r}: not a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise BudgetError(f"budget {name}={raw!r}: must be positive (or off)")
    return value


def to_spec(budgets: Budgets) -> str:
    """The inverse of `parse` (how the adapter hands budgets to the agent)."""
    parts = []
    for name in NAMES:
        value = getattr(budgets, name)
        parts.append(f"{name}={'off' if value is None else value}")
    return ",".join(parts)
