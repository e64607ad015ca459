"""The fake vendor's played conversations in the Responses API: turn choice, namespaced tools,
the SSE wire format (checked with the real OpenAI SDK over real TLS)."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from ironcurtain.fakellm import certs, play, responses
from ironcurtain.fakellm.server import FakeVendor

from ..mitm.harness import LoopThread

READ = "mcp__ironcurtain__filesystem__read_text_file"
SCRIPT = {
    "turns": [
        {"text": "Looking.", "tool_calls": [{"name": READ, "input": {"path": "/w/a b.txt"}}]},
        {"tool_calls": [{"name": "x", "input": {}}, {"name": "y", "input": {"n": [1, 2, 3]}}]},
        {"text": "the end"},
    ]
}
TOOLS = [{"type": "function", "name": READ, "parameters": {"type": "object"}}]
NAMESPACED = [
    {
        "type": "namespace",
        "name": "mcp__ironcurtain",
        "description": "d",
        "tools": [{"type": "function", "name": "filesystem__read_text_file"}],
    }
]
USER = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]}
SAID = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "x"}]}
CALL = {"type": "function_call", "call_id": "c", "name": "t", "arguments": "{}"}
OUTPUT = {"type": "function_call_output", "call_id": "c", "output": "r"}


@pytest.mark.parametrize(
    ("items", "number"),
    [
        ([USER], 0),
        ([USER, SAID, USER], 1),
        ([USER, SAID, CALL, OUTPUT], 1),  # text and a call: one turn
        ([USER, CALL, OUTPUT, CALL, CALL, OUTPUT, OUTPUT], 2),
        ([USER, {"type": "reasoning", "summary": []}, CALL, OUTPUT, SAID], 2),
        ([USER, SAID, OUTPUT, SAID, OUTPUT, SAID, OUTPUT, SAID], 4),
    ],
)
def test_the_turn_is_the_number_of_assistant_runs_in_the_input(
    items: list[dict[str, Any]], number: int
) -> None:
    script = play.parse_script(SCRIPT)
    expected = (
        script.turns[number] if number < 3 else play.Turn(text="(the script has no more turns)")
    )
    assert responses.turn_for(script, {"input": items, "tools": TOOLS}) == (number, expected)


def test_a_request_without_tools_is_a_side_question() -> None:
    script = play.parse_script(SCRIPT)
    assert responses.turn_for(script, {"input": [USER]}) == (-1, play.Turn(text=play.SIDE_TEXT))


def test_a_call_into_a_namespace_is_answered_split_as_the_vendor_answers_it() -> None:
    turn = play.parse_script(SCRIPT).turns[0]
    spaces = responses.namespaces({"tools": NAMESPACED})
    items = responses.output_items(0, turn, spaces)
    assert [i["type"] for i in items] == ["message", "function_call"]
    assert (items[1]["namespace"], items[1]["name"]) == (
        "mcp__ironcurtain",
        "filesystem__read_text_file",
    )
    flat = responses.output_items(0, turn, responses.namespaces({"tools": TOOLS}))
    assert "namespace" not in flat[1]
    assert flat[1]["name"] == READ
    unknown = responses.output_items(1, play.parse_script(SCRIPT).turns[1], spaces)
    assert [i["name"] for i in unknown] == ["x", "y"]  # not in the namespace: as scripted


@pytest.fixture
def vendor(tmp_path: Path) -> Iterator[tuple[openai.OpenAI, Path]]:
    files = certs.write(tmp_path / "certs", ["localhost"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    (tmp_path / play.SCRIPT_FILE).write_text(json.dumps(SCRIPT))
    fake = FakeVendor(script=play.load(tmp_path), record_to=tmp_path / play.RECORD_FILE)
    loop = LoopThread()
    port = loop.run(fake.start(context, "127.0.0.1"))
    http = httpx2.Client(verify=ssl.create_default_context(cafile=str(files.ca)), trust_env=False)
    client = openai.OpenAI(
        api_key="sk-proj-test", base_url=f"https://localhost:{port}/v1", http_client=http
    )
    try:
        yield client, tmp_path
    finally:
        http.close()
        loop.run(fake.close())
        loop.stop()


def test_the_real_sdk_reads_the_played_turns_streamed_and_whole(
    vendor: tuple[openai.OpenAI, Path],
) -> None:
    client, folder = vendor
    items: list[Any] = [USER]
    with client.responses.stream(model="m", input=items, tools=TOOLS) as stream:  # type: ignore[arg-type]
        kinds = [event.type for event in stream]
        first = stream.get_final_response()
    assert (kinds[0], kinds[-1]) == ("response.created", "response.completed")
    assert first.usage is not None
    assert (first.usage.input_tokens, first.usage.output_tokens) == (12, 34)
    assert first.output_text == "Looking."
    call = first.output[1]
    assert call.type == "function_call"
    assert (call.call_id, call.name, json.loads(call.arguments)) == (
        responses.call_id(0, 0),
        READ,
        {"path": "/w/a b.txt"},
    )
    items += [o.model_dump(exclude_none=True) for o in first.output]
    items.append({"type": "function_call_output", "call_id": call.call_id, "output": "x"})
    second = client.responses.create(model="m", input=items, tools=TOOLS)  # type: ignore[arg-type]
    assert [json.loads(o.arguments) for o in second.output if o.type == "function_call"] == [
        {},
        {"n": [1, 2, 3]},
    ]
    side = client.responses.create(model="m", input=[USER])  # type: ignore[list-item]
    assert side.output_text == play.SIDE_TEXT

    seen = [json.loads(line) for line in (folder / play.RECORD_FILE).read_text().splitlines()]
    assert len(seen) == 3
    assert seen[0]["headers"]["authorization"] == [play.digest("Bearer sk-proj-test")]
    assert seen[1]["body"]["input"][-1]["call_id"] == responses.call_id(0, 0)
