"""The user's session defaults: `[session]` and `[budget]` tables in the user config file.

    [session]
    agent = "claude-code"        # the agent `ironcurtain run` starts without --agent
    escalation_timeout_s = 300   # how long a call waits for a human before it is denied

    [budget]                     # the MITM's outer wall per session; false: no limit
    tokens = 1000000
    requests = false
    seconds = 1800
    cost_usd = 5.0

A command-line option wins over these; these win over the built-in defaults. Pure: the caller
reads the file (settings.user_table) and says which agents exist.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

SESSION_FIELDS = ("agent", "escalation_timeout_s")
BUDGET_FIELDS = ("tokens", "requests", "seconds", "cost_usd")
MAX_ESCALATION_S = 24 * 3600.0
_INTEGERS = frozenset({"tokens", "requests"})
_UPPER = {"tokens": 10**12, "requests": 10**9, "seconds": 7 * 24 * 3600.0, "cost_usd": 1e6}


class UserConfigError(ValueError):
    """A section of the user config is malformed; the message names the section and field."""


@dataclass(frozen=True, slots=True)
class SessionDefaults:
    agent: str | None = None
    escalation_timeout_s: float | None = None
    # field -> limit, or None for "no limit"; a field left out keeps the MITM's default
    budget: Mapping[str, float | int | None] = field(default_factory=dict)


def parse(session: object, budget: object, agents: Iterable[str]) -> SessionDefaults:
    """Both tables (None when absent) validated, or UserConfigError naming the field."""
    known = sorted(agents)
    table = _table("session", session, SESSION_FIELDS)
    agent = table.get("agent")
    if agent is not None and agent not in known:
        shown = str(agent)[:40]
        raise UserConfigError(f"session.agent: {shown!r} is not one of {', '.join(known)}")
    timeout = table.get("escalation_timeout_s")
    if timeout is not None:
        timeout = _number("session.escalation_timeout_s", timeout, MAX_ESCALATION_S)
    limits = {
        name: _limit(name, value) for name, value in _table("budget", budget, BUDGET_FIELDS).items()
    }
    return SessionDefaults(agent, timeout, limits)


def _table(name: str, raw: object, fields: tuple[str, ...]) -> dict[str, object]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise UserConfigError(f"{name}: a table ([{name}]) of {', '.join(fields)}")
    unknown = sorted(str(k) for k in raw if k not in fields)
    if unknown:
        raise UserConfigError(f"{name}: unknown {', '.join(unknown)} (known: {', '.join(fields)})")
    return dict(raw)


def _limit(name: str, value: object) -> float | int | None:
    if value is False:
        return None  # switched off
    number = _number(f"budget.{name}", value, _UPPER[name])
    if name in _INTEGERS:
        if number != int(number):
            raise UserConfigError(f"budget.{name}: a whole number (or false for no limit)")
        return int(number)
    return number


def _number(where: str, value: object, upper: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserConfigError(f"{where}: a number" + (" or false" if "budget" in where else ""))
    try:
        number = float(value)
    except OverflowError:  # a 400-digit TOML integer
        number = math.inf
    if not math.isfinite(number) or not 0 < number <= upper:
        raise UserConfigError(f"{where}: above 0 and at most {upper:g}")
    return number
