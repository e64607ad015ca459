"""A backend's notifications are rebuilt from checked fields: anything else is dropped, strings
are cut, and a notification of the wrong shape is not relayed at all."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ironcurtain.mcpproxy import notices

GOOD = {"progressToken": "ic-ours", "progress": 50, "total": 100, "message": "half"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (GOOD, {"progressToken": "mine", "progress": 50, "total": 100, "message": "half"}),
        ({"progress": 0.5}, {"progressToken": "mine", "progress": 0.5}),
        # Fields nobody checked (the backend's _meta, a stray key) never reach the client.
        (
            {**GOOD, "_meta": {"x": 1}, "secret": "k"},
            {"progressToken": "mine", "progress": 50, "total": 100, "message": "half"},
        ),
        ({"progress": True}, None),
        ({"progress": "50"}, None),
        ({"progress": float("nan")}, None),
        ({"progress": float("inf")}, None),
        ({"progress": 1, "total": "100"}, None),
        ({"progress": 1, "message": {"text": "x"}}, None),
        ({}, None),
        ([], None),
        (None, None),
    ],
)
def test_progress_is_rebuilt_under_the_clients_token(params: Any, expected: Any) -> None:
    built = notices.progress(params, "mine")
    assert (built and built["params"]) == expected
    if built is not None:
        assert set(built) == {"jsonrpc", "method", "params"}


def test_a_long_progress_message_is_cut() -> None:
    built = notices.progress({"progress": 1, "message": "x" * 100_000}, 7)
    assert built is not None
    assert len(built["params"]["message"]) == notices.MAX_MESSAGE_CHARS
    assert built["params"]["progressToken"] == 7


@pytest.mark.parametrize(
    ("params", "floor", "relayed"),
    [
        ({"level": "info", "data": "started"}, "debug", True),
        ({"level": "info", "data": "started"}, "info", True),
        ({"level": "info", "data": "started"}, "warning", False),  # below the client's level
        ({"level": "emergency", "data": {"a": [1]}}, "error", True),
        ({"level": "INFO", "data": "x"}, "debug", False),  # not a level as MCP spells them
        ({"level": "loud", "data": "x"}, "debug", False),
        ({"level": "info"}, "debug", False),  # data is required
        ({"level": "info", "data": "x", "logger": 5}, "debug", False),
        ("info", "debug", False),
    ],
)
def test_log_messages_respect_the_level_and_their_shape(
    params: Any, floor: str, relayed: bool
) -> None:
    assert (notices.log(params, floor) is not None) is relayed


def test_a_log_message_keeps_only_checked_fields_and_is_bounded() -> None:
    params = {"level": "info", "logger": "L" * 500, "data": {"big": "y" * 50_000}, "_meta": {}}
    built = notices.log(params, "debug")
    assert built is not None
    assert set(built["params"]) == {"level", "logger", "data"}
    assert len(built["params"]["logger"]) == notices.MAX_LOGGER_CHARS
    data = built["params"]["data"]
    assert isinstance(data, str)
    assert data.endswith(notices.CUT)
    assert len(data) <= notices.MAX_LOG_DATA_CHARS + len(notices.CUT)


def test_a_log_message_nested_too_deep_to_write_is_dropped() -> None:
    deep: Any = "x"
    for _ in range(100_000):
        deep = [deep]
    assert notices.log({"level": "info", "data": deep}, "debug") is None


@pytest.mark.parametrize(
    ("meta", "token"),
    [
        ({"progressToken": "t"}, "t"),
        ({"progressToken": 3}, 3),
        ({"progressToken": True}, None),
        ({"progressToken": ""}, None),
        ({"progressToken": "t" * 201}, None),
        ({"progressToken": 1.5}, None),
        ({"progressToken": None}, None),
        ("t", None),
        (None, None),
    ],
)
def test_only_a_plain_bounded_token_asks_for_progress(meta: Any, token: Any) -> None:
    assert notices.client_token(meta) == token


@pytest.mark.parametrize(
    ("params", "uri"),
    [
        ({"uri": "test://a", "title": "x", "_meta": {}}, "test://a"),
        ({"uri": ""}, None),
        ({"uri": "u" * 5000}, None),
        ({"uri": 5}, None),
        ([], None),
    ],
)
def test_an_update_names_one_bounded_uri(params: Any, uri: str | None) -> None:
    found = notices.updated(params)
    assert (found and found[0]) == uri
    if found is not None:
        assert found[1]["params"] == {"uri": uri}


def test_an_event_is_one_line_of_json() -> None:
    event = notices.sse({"jsonrpc": "2.0", "method": "m", "params": {"t": "a\nb\r\n\ndata: x"}})
    assert event is not None
    head, data, end = event.split(b"\n", 2)
    assert (head, end) == (b"event: message", b"\n")
    assert json.loads(data.removeprefix(b"data: "))["params"]["t"] == "a\nb\r\n\ndata: x"
    assert notices.sse({"bad": "\ud800"}) is None
