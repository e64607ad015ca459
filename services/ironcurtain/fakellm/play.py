"""Scripted Messages conversations for the fake vendor, and a record of what it received. Pure.

A test writes `script.json` into a folder it mounts into the fake (`--play DIR`):

    {"turns": [
        {"tool_calls": [{"name": "mcp__ironcurtain__filesystem__read_text_file",
                         "input": {"path": "/workspace/hello.txt"}}]},
        {"text": "the final answer"}
    ]}

A Messages request that offers tools is answered with turn N, N being the number of assistant
messages it already holds (so a retried request gets the same turn); a turn with tool calls ends
with `stop_reason: "tool_use"`, streamed as the real API streams it (tool input as
`input_json_delta` pieces). Requests without tools (a client's side questions) get `SIDE_TEXT`.
Every request is recorded, one JSON line each, credential header values replaced by their SHA-256.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPT_FILE = "script.json"
RECORD_FILE = "seen.jsonl"
SIDE_TEXT = "ok"
DONE_TEXT = "(the script has no more turns)"
INPUT_TOKENS = 12
OUTPUT_TOKENS = 34
JSON_PIECE = 16  # characters of tool input per input_json_delta event
CREDENTIAL_HEADERS = frozenset({"x-api-key", "authorization", "x-goog-api-key", "api-key"})


class ScriptError(ValueError):
    """The script file is not what this module expects."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    input: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Turn:
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class Script:
    turns: tuple[Turn, ...]

    def turn_for(self, request: Mapping[str, Any]) -> tuple[int, Turn]:
        """The turn that answers this request, and its number (-1: a side question)."""
        if not request.get("tools"):
            return -1, Turn(text=SIDE_TEXT)
        messages = request.get("messages")
        said = sum(
            1
            for m in (messages if isinstance(messages, list) else [])
            if isinstance(m, dict) and m.get("role") == "assistant"
        )
        if said < len(self.turns):
            return said, self.turns[said]
        return said, Turn(text=DONE_TEXT)


def parse_script(doc: object) -> Script:
    if not isinstance(doc, dict) or not isinstance(doc.get("turns"), list):
        raise ScriptError('a script is {"turns": [...]}')
    turns = []
    for n, item in enumerate(doc["turns"]):
        if not isinstance(item, dict) or set(item) - {"text", "tool_calls"}:
            raise ScriptError(f"turn {n}: expected an object with text and/or tool_calls")
        text = item.get("text", "")
        calls = item.get("tool_calls", [])
        if not isinstance(text, str) or not isinstance(calls, list):
            raise ScriptError(f"turn {n}: text is a string, tool_calls a list")
        parsed = []
        for call in calls:
            if (
                not isinstance(call, dict)
                or not isinstance(call.get("name"), str)
                or not isinstance(call.get("input", {}), dict)
            ):
                raise ScriptError(f"turn {n}: a tool call is {{name: str, input: object}}")
            parsed.append(ToolCall(call["name"], dict(call.get("input", {}))))
        if not text and not parsed:
            raise ScriptError(f"turn {n}: says nothing")
        turns.append(Turn(text, tuple(parsed)))
    return Script(tuple(turns))


def load(folder: Path) -> Script:
    try:
        return parse_script(json.loads((folder / SCRIPT_FILE).read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise ScriptError(f"{folder / SCRIPT_FILE}: {exc}") from None


def tool_use_id(turn: int, call: int) -> str:
    """Deterministic ids, so a test can find the tool_result for each call."""
    return f"toolu_ic_{turn:02d}_{call:02d}"


def _blocks(number: int, turn: Turn) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": turn.text}] if turn.text else []
    for i, call in enumerate(turn.tool_calls):
        blocks.append(
            {
                "type": "tool_use",
                "id": tool_use_id(number, i),
                "name": call.name,
                "input": call.input,
            }
        )
    return blocks


def _stop_reason(turn: Turn) -> str:
    return "tool_use" if turn.tool_calls else "end_turn"


def message(model: str, number: int, turn: Turn) -> dict[str, Any]:
    """The whole (non-streamed) Messages answer."""
    return {
        "id": f"msg_ic_{max(number, 0):02d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _blocks(number, turn),
        "stop_reason": _stop_reason(turn),
        "stop_sequence": None,
        "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS},
    }


def _sse(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def sse_events(model: str, number: int, turn: Turn) -> list[bytes]:
    """The same answer as the real API streams it, one bytes object per SSE event."""
    start = {**message(model, number, turn), "content": [], "stop_reason": None}
    start["usage"] = {"input_tokens": INPUT_TOKENS, "output_tokens": 1}
    events = [_sse("message_start", {"type": "message_start", "message": start})]
    events.append(_sse("ping", {"type": "ping"}))
    for index, block in enumerate(_blocks(number, turn)):
        opening: dict[str, Any]
        if block["type"] == "text":
            opening = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": block["text"]}]
        else:
            opening = {**block, "input": {}}
            raw = json.dumps(block["input"])
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [
                {"type": "input_json_delta", "partial_json": raw[i : i + JSON_PIECE]}
                for i in range(0, len(raw), JSON_PIECE)
            ]
        events.append(
            _sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opening},
            )
        )
        for delta in deltas:
            events.append(
                _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": _stop_reason(turn), "stop_sequence": None},
                "usage": {"output_tokens": OUTPUT_TOKENS},
            },
        )
    )
    events.append(_sse("message_stop", {"type": "message_stop"}))
    return events


def digest(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def record(
    method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes
) -> dict[str, Any]:
    """One received request as a JSON-able object (credentials as digests, never in clear)."""
    seen: dict[str, list[str]] = {}
    for name, value in headers:
        seen.setdefault(name, []).append(digest(value) if name in CREDENTIAL_HEADERS else value)
    try:
        doc: Any = json.loads(body) if body else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        doc = body.decode("utf-8", "replace")
    return {"method": method, "target": target, "headers": seen, "body": doc}
