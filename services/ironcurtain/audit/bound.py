"""Records cut to size before they become audit lines: names, values, lists and depth.

Everything a line holds came from someone we do not trust (an agent's tool arguments, a vendor's
error text), so no part of it may grow a line without bound: a 1.9 M-character argument *name*
once made a 22 MB line. Pure: no I/O, and the same input always gives the same output, so a
line can be re-derived when it is checked.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Limits:
    text: int = 2048  # characters of a string value kept
    name: int = 128  # characters of a mapping key kept
    items: int = 64  # entries of a list or mapping kept
    depth: int = 8  # levels of nesting kept
    line: int = 65536  # bytes of a whole line; past it the record becomes a summary


DEFAULT = Limits()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def cut(text: str, keep: int) -> str:
    """`text`, or its start and a note of its length and hash, `keep` characters in all (so
    cutting again changes nothing)."""
    if len(text) <= keep:
        return text
    note = f"...[{len(text)} chars, sha256 {_sha(text)}]"
    return text[: max(0, keep - len(note))] + note


def bounded(value: Any, limits: Limits = DEFAULT, _depth: int = 0) -> Any:
    """A JSON-safe copy of `value` within `limits` (non-finite floats become strings)."""
    kind = type(value)  # exact types first: this runs on every audit line
    if kind is str:
        return value if len(value) <= limits.text else cut(value, limits.text)
    if kind is int or kind is bool or value is None:
        return value
    if isinstance(value, str):
        return cut(str(value), limits.text)
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if _depth >= limits.depth and isinstance(value, Mapping | list | tuple):
        return f"[nested deeper than {limits.depth} levels]"
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if index == limits.items:
                out["..."] = f"[{len(value) - index} more keys]"
                break
            name = key if type(key) is str else str(key)
            if len(name) > limits.name:
                name = cut(name, limits.name)
            # The first cases of bounded() inline (most records are flat: a call per field
            # was most of the cost of a line); the same result as the call.
            kind = type(item)
            if (
                kind is int
                or kind is bool
                or item is None
                or (kind is str and len(item) <= limits.text)
                or (kind is float and math.isfinite(item))
            ):
                out[name] = item
            else:
                out[name] = bounded(item, limits, _depth + 1)
        return out
    if isinstance(value, list | tuple):
        items = [bounded(v, limits, _depth + 1) for v in value[: limits.items]]
        if len(value) > limits.items:
            items.append(f"[{len(value) - limits.items} more items]")
        return items
    return cut(repr(value), limits.text)  # not JSON: its text, cut
