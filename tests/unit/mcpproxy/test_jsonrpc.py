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
    ({"jsonrpc": "2.0", "id": 5, "result": {}}, Response(5)),
    ({"jsonrpc": "2.0", "id": "r", "error": {"code": 1, "message": "m"}}, Response("r")),
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
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
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
