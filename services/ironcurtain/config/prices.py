"""The user's own model prices: `[[prices.PROVIDER]]` tables in the user config file.

The built-in table (mitm/providers.yaml) is an estimate as of its date; vendors change prices
and ship models faster than we release. A user (or a team) writes what they pay:

    [[prices.anthropic]]
    model = "claude-opus-4-5*"   # an fnmatch glob over the model the vendor reports
    input = 5.0                  # USD per million input tokens
    output = 25.0                # USD per million output tokens

Their entries come before the built-in ones of that provider, so the first match is theirs.
Pure: the caller reads the file; the MITM parses the same shape again from its settings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

FIELDS = frozenset({"model", "input", "output"})
MAX_PRICE = 10_000.0  # USD per million tokens: far above any real price, refuses a typo's 1e9
MAX_ENTRIES = 200  # per provider
_PROVIDER = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_MODEL = re.compile(r"[A-Za-z0-9*?.:/@_\-\[\]]{1,128}")

Table = dict[str, list[dict[str, Any]]]


class PriceError(ValueError):
    """A price entry is malformed; the message names the provider, the entry and the field."""


def parse(raw: object, known: frozenset[str] | None = None, source: str = "prices") -> Table:
    """`{provider: [{model, input, output}, ...]}` validated (floats finite, 0..MAX_PRICE, the
    model a plain glob), or PriceError. `known`: the provider names that may be priced."""
    if not isinstance(raw, Mapping):
        raise PriceError(f"{source}: a table of providers, each a list of price entries")
    table: Table = {}
    for provider, entries in raw.items():
        where = f"{source}.{provider}"
        if not isinstance(provider, str) or not _PROVIDER.fullmatch(provider):
            raise PriceError(f"{source}: {str(provider)[:40]!r} is not a provider name")
        if known is not None and provider not in known:
            names = ", ".join(sorted(known))
            raise PriceError(f"{where}: unknown provider (known: {names})")
        if not isinstance(entries, list) or not entries or len(entries) > MAX_ENTRIES:
            raise PriceError(f"{where}: a list of 1 to {MAX_ENTRIES} entries ([[{where}]])")
        table[provider] = [_entry(f"{where}[{i}]", e) for i, e in enumerate(entries)]
    return table


def _entry(where: str, entry: object) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise PriceError(f"{where}: a table with model, input and output")
    missing, unknown = FIELDS - set(entry), set(entry) - FIELDS
    if missing or unknown:
        problems = [f"missing {', '.join(sorted(missing))}"] if missing else []
        problems += [f"unknown {', '.join(sorted(map(str, unknown)))}"] if unknown else []
        raise PriceError(f"{where}: {'; '.join(problems)}")
    model = entry["model"]
    if not isinstance(model, str) or not _MODEL.fullmatch(model):
        raise PriceError(f"{where}.model: a model name or glob (letters, digits, . - _ : / @ * ?)")
    return {"model": model, "input": _usd(f"{where}.input", entry["input"]),
            "output": _usd(f"{where}.output", entry["output"])}  # fmt: skip


def _usd(where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PriceError(f"{where}: a number (USD per million tokens)")
    try:
        number = float(value)
    except OverflowError:  # a 400-digit TOML integer
        number = math.inf
    if not math.isfinite(number) or not 0.0 <= number <= MAX_PRICE:
        raise PriceError(f"{where}: between 0 and {MAX_PRICE:g} USD per million tokens")
    return number
