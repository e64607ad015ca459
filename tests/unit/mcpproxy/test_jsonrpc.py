"""JSON-RPC bodies as the proxy reads them: one message, an object's params, string/int ids."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.mcpproxy.jsonrpc import (
    INVALID_REQUEST,
    PARSE_ERROR,
    Notification,
    Request,
    Response,
    RpcError,
    error_body,
    parse_message,
    result_body,
)

VALID: list[tuple[Any, object]] = [
    ({"jsonrpc": "2.0", "id": 1, "method": "ping"}, Request(1, "ping", {})),
    ({"jsonrpc": "2.0", "id": "a", "method": "x", "params": {"k": 1}}, Request("a", "x", {"k": 1})),
    ({"jsonrpc": "2.0", "id": 0, "method": "x", "params": None}, Request(0, "x", {})),
    ({"jsonrpc": "2.0", "method": "n/x"}, Notification("n/x", {})),
    ({"jsonrpc": "2.0", "id": 5, "result": {}}, Response(5, {})),
    (
        {"jsonrpc": "2.0", "id": "r", "error": {"code": 1, "message": "m"}},
        Response("r", None, {"code": 1, "message": "m"}),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("message", "expected"), VALID)
def test_well_formed_messages_are_read(message: Any, expected: object) -> None:
    assert parse_message(json.dumps(message).encode()) == expected


INVALID: list[tuple[bytes, int, Any]] = [
    (b"", PARSE_ERROR, None),
    (b"{not json", PARSE_ERROR, None),
    (b"\xff\xfe", PARSE_ERROR, None),
    (b"[" * 100000, PARSE_ERROR, None),  # deep nesting
    (b"1" * 5000, PARSE_ERROR, None),  # an integer too long to convert
    (b"[]", INVALID_REQUEST, None),
    (b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', INVALID_REQUEST, None),  # a batch
    (b'"ping"', INVALID_REQUEST, None),
    (b"null", INVALID_REQUEST, None),
    (b'{"jsonrpc":"1.0","id":3,"method":"ping"}', INVALID_REQUEST, 3),
    (b'{"id":3,"method":"ping"}', INVALID_REQUEST, 3),
    (b'{"jsonrpc":"2.0","id":null,"method":"ping"}', INVALID_REQUEST, None),
    (b'{"jsonrpc":"2.0","id":true,"method":"ping"}', INVALID_REQUEST, None),
    (b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}', INVALID_REQUEST, None),
    (b'{"jsonrpc":"2.0","id":[1],"method":"ping"}', INVALID_REQUEST, None),
    (b'{"jsonrpc":"2.0","id":4,"method":5}', INVALID_REQUEST, 4),
    (b'{"jsonrpc":"2.0","id":4,"method":""}', INVALID_REQUEST, 4),
    (b'{"jsonrpc":"2.0","id":4,"method":"x","params":[1]}', INVALID_REQUEST, 4),
    (b'{"jsonrpc":"2.0","id":4,"method":"x","params":"p"}', INVALID_REQUEST, 4),
    (b'{"jsonrpc":"2.0","id":4}', INVALID_REQUEST, 4),
    (b'{"jsonrpc":"2.0","id":4,"result":{},"error":{}}', INVALID_REQUEST, 4),
    (b'{"jsonrpc":"2.0","result":{}}', INVALID_REQUEST, None),
]


@pytest.mark.parametrize(("body", "code", "request_id"), INVALID)
def test_malformed_bodies_are_refused_with_the_right_code(
    body: bytes, code: int, request_id: Any
) -> None:
    with pytest.raises(RpcError) as caught:
        parse_message(body)
    assert caught.value.code == code
    assert caught.value.id == request_id
    answer = json.loads(caught.value.body())
    assert answer["id"] == request_id  # `id: null` present when unknown
    assert answer["error"]["code"] == code


def test_bodies_are_written_compactly_with_unicode_kept() -> None:
    assert json.loads(result_body(1, {"t": "é"})) == {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {"t": "é"},
    }
    assert "é".encode() in result_body(1, {"t": "é"})
    assert json.loads(error_body(None, -1, "m", {"d": 1}))["error"] == {
        "code": -1,
        "message": "m",
        "data": {"d": 1},
    }


@given(st.binary(max_size=300))
def test_any_bytes_are_a_message_or_a_refusal(body: bytes) -> None:
    try:
        message: object = parse_message(body)
    except RpcError as exc:
        message = exc
    if isinstance(message, RpcError):
        assert message.code in (PARSE_ERROR, INVALID_REQUEST)
        assert json.loads(message.body())["error"]["code"] == message.code
    else:
        assert isinstance(message, Request | Notification | Response)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2]) | json_values,
        "id": json_values,
        "method": st.sampled_from(["ping", "tools/call", ""]) | json_values,
        "params": json_values,
        "result": json_values,
        "error": json_values,
    },
)


@given(envelopes)
def test_any_json_object_is_a_typed_message_or_a_refusal(envelope: dict[str, Any]) -> None:
    try:
        message: object = parse_message(json.dumps(envelope).encode())
    except RpcError as exc:
        message = exc
    if isinstance(message, RpcError):
        assert message.code == INVALID_REQUEST
    if isinstance(message, Request | Response):
        assert isinstance(message.id, str | int)
        assert not isinstance(message.id, bool)
    if isinstance(message, Request | Notification):
        assert isinstance(message.method, str)
        assert message.method
        assert isinstance(message.params, dict)


# -- strict at the edge: what Python's json module accepts but interoperable JSON does not ----

PING = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":%s}'
STRICT: list[tuple[str, bytes, str]] = [
    ("NaN", PING % b'{"n":NaN}', "NaN is not a JSON number"),
    ("Infinity", PING % b'{"n":Infinity}', "Infinity is not a JSON number"),
    ("-Infinity", PING % b'{"n":[-Infinity]}', "-Infinity is not a JSON number"),
    ("a number beyond a double", PING % b'{"n":1e400}', "too large for a double"),
    ("an escaped lone surrogate", PING % b'{"path":"\\ud800"}', "lone surrogate"),
    ("a lone low surrogate", PING % b'{"path":"a\\udc00b"}', "lone surrogate"),
    ("a lone surrogate in a list", PING % b'{"paths":["ok","\\udbff"]}', "lone surrogate"),
    ("a lone surrogate in a key", PING % b'{"\\ud800":1}', "lone surrogate"),
    ("a raw (UTF-8 encoded) surrogate", PING % '{"p":"\udce9"}'.encode("utf-8", "surrogatepass"), "not UTF-8"),  # noqa: E501
    ("UTF-16", '{"jsonrpc":"2.0","id":1,"method":"ping"}'.encode("utf-16"), "not UTF-8"),
    ("a byte-order mark", b"\xef\xbb\xbf" + PING % b"{}", "not valid JSON"),
    ("a duplicate key", PING % b'{"path":"a","path":"b"}', "'path' appears twice"),
    ("a duplicate envelope key", b'{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}', "'id' appears twice"),  # noqa: E501
    ("nesting 65 deep", PING % (b'{"a":' + b"[" * 63 + b"]" * 63 + b"}"), "nested more than 64"),
    ("nesting 960 deep", PING % (b'{"a":' + b"[" * 960 + b"]" * 960 + b"}"), "nested more than 64"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "why"), [c[1:] for c in STRICT], ids=[c[0] for c in STRICT])
def test_json_that_is_not_interoperable_is_refused_saying_why(body: bytes, why: str) -> None:
    with pytest.raises(RpcError) as caught:
        parse_message(body)
    assert caught.value.code == PARSE_ERROR
    assert why in caught.value.message


STRICT_CONTROLS: list[tuple[str, bytes]] = [
    ("a surrogate pair (an emoji)", PING % b'{"t":"\\ud83d\\ude00"}'),
    ("raw UTF-8 text", PING % '{"t":"é — 日本"}'.encode()),
    ("large but finite numbers", PING % b'{"n":1.7e308,"m":-1e-320,"i":123456789012345678901}'),
    ("nesting 64 deep", PING % (b'{"a":' + b"[" * 62 + b"]" * 62 + b"}")),
    ("the same key in sibling objects", PING % b'{"a":{"k":1},"b":{"k":2}}'),
]  # fmt: skip


@pytest.mark.parametrize(
    "body", [c[1] for c in STRICT_CONTROLS], ids=[c[0] for c in STRICT_CONTROLS]
)
def test_interoperable_json_is_read_as_before(body: bytes) -> None:
    message = parse_message(body)
    assert isinstance(message, Request)
    assert message.params == json.loads(body)["params"]


def _interoperable(value: Any, depth: int = 0) -> bool:
    if depth > 64:
        return False
    if isinstance(value, float):
        return value == value and abs(value) != float("inf")
    if isinstance(value, str):
        return not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return all(_interoperable(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(_interoperable(k) and _interoperable(v, depth + 1) for k, v in value.items())
    return True


odd_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=6),  # surrogates too
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(odd_values)
def test_any_value_python_can_write_is_read_back_exactly_or_refused(value: Any) -> None:
    # json.dumps writes NaN, Infinity and escaped lone surrogates; the edge reads back only
    # what is interoperable, and reads that unchanged.
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "m", "params": {"v": value}})
    if _interoperable(value):
        assert parse_message(body.encode()) == Request(1, "m", {"v": value})
    else:
        with pytest.raises(RpcError, match=r"^Parse error: ") as caught:
            parse_message(body.encode())
        assert caught.value.code == PARSE_ERROR


@given(st.integers(min_value=1, max_value=200), st.sampled_from(["[", '{"k":']))
def test_nesting_is_refused_exactly_beyond_the_limit(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    inner = opener * depth + "0" + closer * depth
    body = f'{{"jsonrpc":"2.0","id":1,"method":"m","params":{{"v":{inner}}}}}'.encode()
    if depth + 2 <= 64:  # the envelope and params are two levels
        assert isinstance(parse_message(body), Request)
    else:
        with pytest.raises(RpcError, match="nested more than 64"):
            parse_message(body)
