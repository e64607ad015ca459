"""Played conversations in OpenAI's Responses API (what Codex speaks), from play.py's scripts. Pure.

The same `script.json` as for Messages (play.py) answers `POST /v1/responses`: a request that
offers tools gets turn N, N being the number of assistant turns its `input` already holds (a
run of consecutive assistant items — message, function_call, reasoning — is one turn, so a
retried request gets the same turn). A turn's text is an assistant `message` item, each tool
call a `function_call` item with a deterministic `call_id`; streamed, they arrive as the real
API sends them: `response.created`, then per item `output_item.added`, its deltas and
`output_item.done`, and last `response.completed` carrying the whole output and the usage.

Tools grouped in a `namespace` (Codex lists its MCP tools so): a scripted call whose name is
the namespace's name followed by a tool of it (`__` between them, as Codex names them) is
answered as that namespace's call, split into `namespace` and `name` as the vendor answers it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .play import INPUT_TOKENS, JSON_PIECE, OUTPUT_TOKENS, SIDE_TEXT, Script, ToolCall, Turn

ASSISTANT_ITEMS = frozenset({"function_call", "custom_tool_call", "reasoning"})
TEXT_PIECE = 24  # characters of text per output_text.delta event


def call_id(turn: int, call: int) -> str:
    """Deterministic ids, so a test can find the function_call_output for each call."""
    return f"call_ic_{turn:02d}_{call:02d}"


def _is_assistant(item: object) -> bool:
    if not isinstance(item, dict):
        return False
    kind = item.get("type", "message")
    return kind in ASSISTANT_ITEMS or (kind == "message" and item.get("role") == "assistant")


def turn_for(script: Script, request: Mapping[str, Any]) -> tuple[int, Turn]:
    """The turn that answers this request, and its number (-1: a side question)."""
    if not request.get("tools"):
        return -1, Turn(text=SIDE_TEXT)
    items = request.get("input")
    said, before = 0, False
    for item in items if isinstance(items, list) else []:
        now = _is_assistant(item)
        said += now and not before
        before = now
    if said < len(script.turns):
        return said, script.turns[said]
    return said, Turn(text="(the script has no more turns)")


def namespaces(request: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """The request's namespace tools: name -> the names of the tools inside it."""
    found: dict[str, frozenset[str]] = {}
    tools = request.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, dict) and tool.get("type") == "namespace":
            inner = tool.get("tools")
            names = (
                [t.get("name") for t in inner if isinstance(t, dict)]
                if isinstance(inner, list)
                else []
            )
            found[str(tool.get("name"))] = frozenset(n for n in names if isinstance(n, str))
    return found


def _called(call: ToolCall, spaces: Mapping[str, frozenset[str]]) -> dict[str, str]:
    for space, names in spaces.items():
        rest = call.name.removeprefix(space)
        rest = rest.removeprefix("__") if rest not in names else rest  # Codex's delimiter
        if call.name.startswith(space) and rest in names:
            return {"namespace": space, "name": rest}
    return {"name": call.name}


def output_items(
    number: int, turn: Turn, spaces: Mapping[str, frozenset[str]]
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if turn.text:
        items.append(
            {
                "type": "message",
                "id": f"msg_ic_{max(number, 0):02d}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": turn.text, "annotations": []}],
            }
        )
    for i, call in enumerate(turn.tool_calls):
        items.append(
            {
                "type": "function_call",
                "id": f"fc_ic_{max(number, 0):02d}_{i:02d}",
                "call_id": call_id(number, i),
                **_called(call, spaces),
                "arguments": json.dumps(call.input),
                "status": "completed",
            }
        )
    return items


def usage() -> dict[str, Any]:
    return {
        "input_tokens": INPUT_TOKENS,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": OUTPUT_TOKENS,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
    }


def response(model: str, number: int, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole (non-streamed) Responses answer."""
    return {
        "id": f"resp_ic_{max(number, 0):02d}",
        "object": "response",
        "created_at": 1,
        "status": "completed",
        "model": model,
        "output": items,
        "usage": usage(),
    }


def _sse(data: dict[str, Any]) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _item_events(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    """The events between one item's `output_item.added` and its `output_item.done`."""
    where = {"item_id": item["id"], "output_index": index}
    if item["type"] == "function_call":
        deltas = [
            {"type": "response.function_call_arguments.delta", **where, "delta": piece}
            for piece in _pieces(item["arguments"], JSON_PIECE)
        ]
        done = {"type": "response.function_call_arguments.done", **where}
        return [*deltas, {**done, "arguments": item["arguments"]}]
    text = item["content"][0]["text"]
    part = {**where, "content_index": 0}
    empty = {"type": "output_text", "text": "", "annotations": []}
    return [
        {"type": "response.content_part.added", **part, "part": empty},
        *(
            {"type": "response.output_text.delta", **part, "delta": piece}
            for piece in _pieces(text, TEXT_PIECE)
        ),
        {"type": "response.output_text.done", **part, "text": text},
        {"type": "response.content_part.done", **part, "part": item["content"][0]},
    ]


def _opening(item: dict[str, Any]) -> dict[str, Any]:
    if item["type"] == "function_call":
        return {**item, "arguments": "", "status": "in_progress"}
    return {**item, "content": [], "status": "in_progress"}


def sse_events(model: str, number: int, items: list[dict[str, Any]]) -> list[bytes]:
    """The same answer as the real API streams it, one bytes object per SSE event."""
    whole = response(model, number, items)
    started = {**whole, "status": "in_progress", "output": [], "usage": None}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
    ]
    for index, item in enumerate(items):
        events.append(
            {"type": "response.output_item.added", "output_index": index, "item": _opening(item)}
        )
        events += _item_events(index, item)
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append({"type": "response.completed", "response": whole})
    return [_sse({**event, "sequence_number": n}) for n, event in enumerate(events)]
