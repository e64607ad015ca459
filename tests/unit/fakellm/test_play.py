"""The fake vendor's played conversations: parsing, turn choice, the wire format (checked with the
real Anthropic SDK over real TLS), and the record of what it received."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.fakellm import certs, play
from ironcurtain.fakellm.server import FakeVendor

from ..mitm.harness import LoopThread

READ = "mcp__ironcurtain__filesystem__read_text_file"
SCRIPT = {
    "turns": [
        {
            "text": "Looking.",
            "tool_calls": [{"name": READ, "input": {"path": "/workspace/a b.txt"}}],
        },
        {"tool_calls": [{"name": "x", "input": {}}, {"name": "y", "input": {"n": [1, 2, 3]}}]},
        {"text": "the end"},
    ]
}
TOOLS = [{"name": READ, "description": "d", "input_schema": {"type": "object"}}]


def _request(assistant_turns: int, tools: object = TOOLS) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    for _ in range(assistant_turns):
        messages += [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]
    return {"model": "m", "messages": messages, "tools": tools}


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"turns": "no"},
        {"turns": [{}]},
        {"turns": [{"text": 3}]},
        {"turns": [{"text": "a", "extra": 1}]},
        {"turns": [{"tool_calls": [{"input": {}}]}]},
        {"turns": [{"tool_calls": [{"name": "t", "input": []}]}]},
        {"turns": [{"tool_calls": "t"}]},
    ],
)
def test_a_malformed_script_is_refused(doc: object) -> None:
    with pytest.raises(play.ScriptError):
        play.parse_script(doc)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


KEYS = st.sampled_from(["turns", "text", "tool_calls", "name", "input", "x"])
TURNS = st.lists(st.dictionaries(KEYS, JSON | st.lists(st.dictionaries(KEYS, JSON))), max_size=3)


@given(JSON | st.dictionaries(KEYS, JSON | TURNS))
def test_parsing_any_json_gives_a_script_or_a_script_error(doc: object) -> None:
    try:
        script = play.parse_script(doc)
    except play.ScriptError:
        return
    assert all(t.text or t.tool_calls for t in script.turns)


def test_the_turn_is_chosen_by_how_many_times_the_model_has_spoken() -> None:
    script = play.parse_script(SCRIPT)
    assert script.turn_for(_request(0)) == (0, script.turns[0])
    assert script.turn_for(_request(2)) == (2, script.turns[2])
    assert script.turn_for(_request(3)) == (3, play.Turn(text=play.DONE_TEXT))


def test_a_request_without_tools_is_a_side_question() -> None:
    assert play.parse_script(SCRIPT).turn_for(_request(0, tools=[])) == (
        -1,
        play.Turn(text=play.SIDE_TEXT),
    )


def _parse_sse(events: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    parsed = []
    for raw in events:
        head, data = raw.decode().rstrip("\n").split("\n")
        parsed.append((head.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return parsed


def test_a_tool_turn_streams_like_the_real_api() -> None:
    turn = play.parse_script(SCRIPT).turns[1]
    events = _parse_sse(play.sse_events("m", 1, turn))
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert events[0][1]["message"]["stop_reason"] is None
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    for index, call in enumerate(turn.tool_calls):
        block = next(d for n, d in events if n == "content_block_start" and d["index"] == index)
        assert block["content_block"] == {
            "type": "tool_use",
            "id": play.tool_use_id(1, index),
            "name": call.name,
            "input": {},
        }
        pieces = [
            d["delta"]["partial_json"]
            for n, d in events
            if n == "content_block_delta" and d["index"] == index
        ]
        assert json.loads("".join(pieces)) == call.input


def test_the_record_holds_credentials_only_as_digests() -> None:
    seen = play.record(
        "POST",
        "/v1/messages",
        [("x-api-key", "sk-secret"), ("authorization", "Bearer sk-x"), ("accept", "a")],
        b'{"a": 1}',
    )
    assert seen["headers"] == {
        "x-api-key": [play.digest("sk-secret")],
        "authorization": [play.digest("Bearer sk-x")],
        "accept": ["a"],
    }
    assert seen["body"] == {"a": 1}
    assert "sk-" not in json.dumps(seen)


@pytest.fixture
def vendor(tmp_path: Path) -> Iterator[tuple[anthropic.Anthropic, Path]]:
    files = certs.write(tmp_path / "certs", ["localhost"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    (tmp_path / play.SCRIPT_FILE).write_text(json.dumps(SCRIPT))
    fake = FakeVendor(script=play.load(tmp_path), record_to=tmp_path / play.RECORD_FILE)
    loop = LoopThread()
    port = loop.run(fake.start(context, "127.0.0.1"))
    http = httpx2.Client(verify=ssl.create_default_context(cafile=str(files.ca)), trust_env=False)
    client = anthropic.Anthropic(
        api_key="sk-ant-test", base_url=f"https://localhost:{port}", http_client=http, max_retries=0
    )
    try:
        yield client, tmp_path
    finally:
        http.close()
        loop.run(fake.close())
        loop.stop()


def test_the_real_sdk_reads_the_played_turns_streamed_and_whole(
    vendor: tuple[anthropic.Anthropic, Path],
) -> None:
    client, folder = vendor
    messages: list[Any] = [{"role": "user", "content": "go"}]
    with client.messages.stream(model="m", max_tokens=9, messages=messages, tools=TOOLS) as stream:
        first = stream.get_final_message()
    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["text", "tool_use"]
    use = first.content[1]
    assert (use.id, use.name, use.input) == (
        play.tool_use_id(0, 0),
        READ,
        {"path": "/workspace/a b.txt"},
    )
    messages += [
        {"role": "assistant", "content": first.to_dict()["content"]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "x"}],
        },
    ]
    second = client.messages.create(model="m", max_tokens=9, messages=messages, tools=TOOLS)
    assert [b.input for b in second.content if b.type == "tool_use"] == [{}, {"n": [1, 2, 3]}]
    side = client.messages.create(model="m", max_tokens=9, messages=messages[:1])
    assert [(b.type, getattr(b, "text", "")) for b in side.content] == [("text", play.SIDE_TEXT)]

    seen = [json.loads(line) for line in (folder / play.RECORD_FILE).read_text().splitlines()]
    assert len(seen) == 3
    assert seen[0]["headers"]["authorization"] == [play.digest("Bearer sk-ant-test")]
    assert seen[1]["body"]["messages"][-1]["content"][0]["tool_use_id"] == play.tool_use_id(0, 0)


def test_a_bad_script_file_stops_the_fake_with_its_name(tmp_path: Path) -> None:
    (tmp_path / play.SCRIPT_FILE).write_text("{not json")
    with pytest.raises(play.ScriptError, match=r"script\.json"):
        play.load(tmp_path)
