"""The one strict JSON reader both doors use: what it refuses, as which kind, and what it reads."""

from __future__ import annotations

import json
import math
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.strictjson import Kind, StrictJSONError, dumps, loads

from .mcpproxy.test_jsonrpc import odd_values

REFUSED = [
    # (case, body, kind, key, token)
    ("UTF-16", '{"a":1}'.encode("utf-16"), "not_utf8", None, None),
    ("a stray byte", b'{"a":1}\xff', "not_utf8", None, None),
    (
        "a raw (UTF-8 encoded) surrogate",
        '"\udce9"'.encode("utf-8", "surrogatepass"),
        "not_utf8",
        None,
        None,
    ),
    ("NaN", b'{"a":NaN}', "constant", None, "NaN"),
    ("-Infinity", b"[-Infinity]", "constant", None, "-Infinity"),
    ("a number too large for a double", b'{"a":1e400}', "out_of_range", None, "1e400"),
    ("a repeated key", b'{"a":1,"b":2,"a":3}', "duplicate_key", "a", None),
    ("a repeated key deep down", b'{"x":[{"y":{"b":1,"b":1}}]}', "duplicate_key", "b", None),
    ("a key repeated by an escape", b'{"ab":1,"a\\u0062":2}', "duplicate_key", "ab", None),
    ("an escaped lone surrogate", b'{"p":"\\ud800"}', "lone_surrogate", None, None),
    ("a lone low surrogate in a list", b'["ok","a\\udc00b"]', "lone_surrogate", None, None),
    ("a lone surrogate in a key", b'{"k\\ud800":1}', "lone_surrogate", "k\ud800", None),
    ("a lone surrogate at the top", b'"\\udbff"', "lone_surrogate", None, None),
    ("too deep", b"[" * 4 + b"]" * 4, "too_deep", None, None),
    ("deeper than the stack", b"[" * 100_000, "too_deep", None, None),
    ("empty", b"", "invalid", None, None),
    ("cut short", b'{"a":', "invalid", None, None),
    ("two values", b"1 2", "invalid", None, None),
    ("a huge integer", b"1" * 5000, "invalid", None, None),
]


@pytest.mark.parametrize(("case", "body", "kind", "key", "token"), REFUSED)
def test_what_the_json_module_accepts_but_is_not_strict_is_refused_by_kind(
    case: str, body: bytes, kind: str, key: str | None, token: str | None
) -> None:
    with pytest.raises(StrictJSONError) as caught:
        loads(body, max_depth=3)
    assert (caught.value.kind, caught.value.key, caught.value.token) == (kind, key, token), case
    assert isinstance(caught.value, ValueError)


ADMITTED = [
    ("an object", b'{"a":[1,2.5,"x",true,null]}', {"a": [1, 2.5, "x", True, None]}),
    ("a surrogate pair (an emoji)", b'"\\ud83d\\ude00"', "\U0001f600"),
    ("exactly the depth", b"[[[0]]]", [[[0]]]),
    ("a scalar is depth 0", b"7", 7),
    ("the same key in two objects", b'[{"a":1},{"a":2}]', [{"a": 1}, {"a": 2}]),
    ("the largest double", b"1.7976931348623157e308", 1.7976931348623157e308),
]


@pytest.mark.parametrize(("case", "body", "value"), ADMITTED)
def test_interoperable_json_is_read(case: str, body: bytes, value: Any) -> None:
    assert loads(body, max_depth=3) == value, case


def test_without_a_depth_limit_any_depth_the_stack_holds_is_read() -> None:
    assert loads(b"[" * 500 + b"]" * 500, max_depth=None) is not None
    with pytest.raises(StrictJSONError) as caught:
        loads(b"[" * 100_000, max_depth=None)
    assert caught.value.kind == "too_deep"


def test_depth_is_checked_even_when_a_surrogate_escape_starts_the_walk() -> None:
    with pytest.raises(StrictJSONError) as caught:
        loads(b'[[["\\u0041",[0]]]]', max_depth=3)
    assert caught.value.kind == "too_deep"


def test_lone_surrogates_left_to_the_writer_are_refused_by_dumps() -> None:
    value = loads(b'{"p":"\\ud800"}', max_depth=None, surrogates=False)
    assert value == {"p": "\ud800"}
    with pytest.raises(StrictJSONError) as caught:
        dumps(value)
    assert caught.value.kind == "lone_surrogate"
    assert dumps({"a": ["é", 1]}) == '{"a":["é",1]}'.encode()


def _plain(value: Any) -> bool:
    """What interoperable JSON can carry: finite numbers, strings without lone surrogates."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(_plain(k) and _plain(v) for k, v in value.items())
    return True


@given(odd_values, st.booleans())  # NaN, infinities, surrogates: what json.dumps writes
def test_what_json_dumps_writes_is_read_back_equal_when_plain_and_refused_otherwise(
    value: Any, ascii_only: bool
) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    if _plain(value):
        assert loads(body, max_depth=None) == value
        assert loads(body, max_depth=64) == value  # max_leaves keeps it shallow
    else:
        try:
            read = loads(body, max_depth=None)
        except StrictJSONError:
            return
        # Only a high and a low surrogate side by side, escaped, are read back (as one character).
        assert ascii_only
        assert _plain(read)


@given(st.binary(max_size=64))
def test_any_bytes_are_read_or_refused_with_a_strict_json_error(body: bytes) -> None:
    try:
        loads(body, max_depth=8)
    except StrictJSONError as exc:
        kind = exc.kind
    else:
        return  # anything else raised fails the test
    assert kind in get_args(Kind)
