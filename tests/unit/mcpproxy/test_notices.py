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


SAMPLE = {
    "messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}],
    "maxTokens": 100,
}


@pytest.mark.parametrize(
    ("params", "forwarded"),
    [
        (SAMPLE, True),
        ({**SAMPLE, "systemPrompt": "be brief", "temperature": 0.5}, True),
        ({**SAMPLE, "maxTokens": 0}, False),
        ({**SAMPLE, "maxTokens": True}, False),
        ({**SAMPLE, "messages": []}, False),
        (
            {**SAMPLE, "messages": [{"role": "system", "content": {"type": "text", "text": "x"}}]},
            False,
        ),
        ({**SAMPLE, "messages": [{"role": "user", "content": {"type": "resource"}}]}, False),
        ({**SAMPLE, "messages": [{"role": "user", "content": {"type": "text", "text": 5}}]}, False),
        (
            {
                **SAMPLE,
                "messages": [{"role": "user", "content": {"type": "text", "text": "x" * 70_000}}],
            },
            False,
        ),
        ({**SAMPLE, "temperature": float("nan")}, False),
        ({**SAMPLE, "stopSequences": ["a", 5]}, False),
        ([], False),
    ],
)
def test_a_sampling_request_is_rebuilt_or_refused(params: Any, forwarded: bool) -> None:
    assert (notices.server_request(notices.SAMPLING, params) is not None) is forwarded


def test_a_sampling_request_never_asks_for_other_servers_context() -> None:
    params = {**SAMPLE, "includeContext": "allServers", "metadata": {"x": 1}, "_meta": {"y": 2}}
    built = notices.server_request(notices.SAMPLING, params)
    assert built == SAMPLE


FORM = {
    "message": "your name?",
    "requestedSchema": {
        "type": "object",
        "properties": {"name": {"type": "string", "default": "x", "x-evil": "drop me"}},
        "required": ["name"],
    },
}


@pytest.mark.parametrize(
    ("params", "forwarded"),
    [
        (FORM, True),
        ({**FORM, "mode": "form"}, True),
        ({**FORM, "mode": "url", "url": "https://phish.example/login"}, False),  # url mode
        ({**FORM, "requestedSchema": {"type": "array"}}, False),
        ({**FORM, "requestedSchema": {**FORM["requestedSchema"], "required": ["other"]}}, False),
        ({**FORM, "message": 5}, False),
        ({"message": "x"}, False),
    ],
)
def test_an_elicitation_is_a_form_rebuilt_or_refused(params: Any, forwarded: bool) -> None:
    built = notices.server_request(notices.ELICITATION, params)
    assert (built is not None) is forwarded
    if built is not None:
        assert "x-evil" not in built["requestedSchema"]["properties"]["name"]


@pytest.mark.parametrize(
    ("method", "result", "expected"),
    [
        (
            notices.SAMPLING,
            {"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": "m", "x": 1},
            {"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": "m"},
        ),
        (notices.SAMPLING, {"role": "assistant", "content": {"type": "text", "text": "ok"}}, None),
        (notices.SAMPLING, {"forged": True}, None),
        (notices.ELICITATION, {"action": "decline", "content": {"a": 1}}, {"action": "decline"}),
        (
            notices.ELICITATION,
            {"action": "accept", "content": {"n": "x", "k": 3, "b": True, "l": ["a"]}},
            {"action": "accept", "content": {"n": "x", "k": 3, "b": True, "l": ["a"]}},
        ),
        (notices.ELICITATION, {"action": "accept", "content": {"n": {"deep": 1}}}, None),
        (notices.ELICITATION, {"action": "approve"}, None),
        (notices.ELICITATION, "accept", None),
        ("roots/list", {}, None),
    ],
)
def test_the_clients_answer_is_rebuilt_or_refused(method: str, result: Any, expected: Any) -> None:
    assert notices.client_result(method, result) == expected
