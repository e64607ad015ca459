"""Strict JSON, read and written the same way at every door (pure; imports nothing of ours).

Python's json module accepts what other readers take apart or refuse (RFC 8259 as interoperable
JSON, I-JSON RFC 7493): bytes in UTF-16/32, NaN / Infinity, numbers too large for a double,
lone surrogates, the same key twice in one object (readers disagree on which one wins), any
depth. `loads` refuses each of these with a `StrictJSONError` whose `kind` says which, so each
door words its own answer (and decides what of the body it may echo).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

Kind = Literal[
    "not_utf8", "constant", "out_of_range", "duplicate_key", "lone_surrogate", "too_deep", "invalid"
]


class StrictJSONError(ValueError):
    """Why a body is refused: `kind`, the offending `key` and the refused `token`, when known.

    `key` is the repeated key (duplicate_key) or the key holding a lone surrogate (None when a
    string value holds it); `token` is the constant's name or the number's text. Both are the
    sender's bytes: a door shows them only as far as it trusts them.
    """

    def __init__(self, kind: Kind, *, key: str | None = None, token: str | None = None) -> None:
        super().__init__(kind)
        self.kind: Kind = kind
        self.key = key
        self.token = token


def _constant(name: str) -> float:
    raise StrictJSONError("constant", token=name)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJSONError("out_of_range", token=text)
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):  # only then look for which key it was
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise StrictJSONError("duplicate_key", key=key)
            seen.add(key)
    return result


_SURROGATE = re.compile("[\ud800-\udfff]")
_DECODER = json.JSONDecoder(
    parse_float=_finite, parse_constant=_constant, object_pairs_hook=_object
)


def _check(value: Any, depth: int, max_depth: int | None, surrogates: bool) -> None:
    """Depth and lone surrogates (json pairs escaped ones; what is left alone is lone)."""
    if max_depth is not None and depth > max_depth:
        raise StrictJSONError("too_deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if surrogates and _SURROGATE.search(key):
                raise StrictJSONError("lone_surrogate", key=key)
            if isinstance(item, dict | list):
                _check(item, depth + 1, max_depth, surrogates)
            elif surrogates and isinstance(item, str) and _SURROGATE.search(item):
                raise StrictJSONError("lone_surrogate")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                _check(item, depth + 1, max_depth, surrogates)
            elif surrogates and isinstance(item, str) and _SURROGATE.search(item):
                raise StrictJSONError("lone_surrogate")
    elif surrogates and isinstance(value, str) and _SURROGATE.search(value):
        raise StrictJSONError("lone_surrogate")


def loads(body: bytes, *, max_depth: int | None, surrogates: bool = True) -> Any:
    """The body as strict JSON, or StrictJSONError saying why not.

    `max_depth` counts arrays and objects (the outermost one is 1); None: any depth the
    interpreter's stack allows (a deeper body is `too_deep` either way). `surrogates=False`
    leaves escaped lone surrogates in the value, for a caller that re-serialises with `dumps`
    (which refuses them) rather than walk a large value here.
    """
    try:
        text = body.decode("utf-8")  # strict: raw surrogates (ED A0 80...) are refused here
    except UnicodeDecodeError:  # and bytes would let json guess UTF-16/32
        raise StrictJSONError("not_utf8") from None
    try:
        decoded = _DECODER.decode(text)
        # The walk only when it can find something: a lone surrogate needs a `\u` escape (raw
        # ones failed the decode), depth over the limit needs that many brackets.
        if (surrogates and "\\u" in text) or (
            max_depth is not None and text.count("[") + text.count("{") > max_depth
        ):
            _check(decoded, 1 if isinstance(decoded, dict | list) else 0, max_depth, surrogates)
    except StrictJSONError:
        raise
    except RecursionError:  # deeper than the interpreter's stack, so deeper than any limit
        raise StrictJSONError("too_deep") from None
    except ValueError:  # syntax errors; huge integers are ValueErrors too
        raise StrictJSONError("invalid") from None
    return decoded


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; StrictJSONError `lone_surrogate` for a string with no UTF-8 form."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") decodes but has no UTF-8 form
        raise StrictJSONError("lone_surrogate") from None
