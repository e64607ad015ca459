"""Token usage read from responses as they stream past, without delaying them.

One parser covers the wire formats we meter: Anthropic JSON and SSE (`message_start` carries
input tokens, `message_delta` the running output count), OpenAI `usage` (chat and responses
APIs, JSON and SSE), Google `usageMetadata` (JSON, JSON-array stream, SSE). Counts in all of
them are cumulative, so the meter keeps the maximum seen per field.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

MAX_JSON_BYTES = 8 * 1024 * 1024  # non-streamed bodies above this are metered from their tail
TAIL_BYTES = 64 * 1024  # of a large body: where its (final) usage object is looked for
CHARS_PER_TOKEN = 4  # output streamed before a hang-up: content characters / 4, an estimate
# Fields that carry generated content in the vendors' stream events (Anthropic text, JSON and
# thinking deltas; OpenAI chat content, refusals, tool-call arguments; Responses API deltas;
# Google parts). Only their string values are counted.
_CONTENT_KEYS = frozenset(
    [
        "text",
        "partial_json",
        "thinking",
        "content",
        "arguments",
        "refusal",
        "delta",
        "reasoning_content",
    ]
)
_USAGE_KEY = re.compile(rb'(?<!\\)"(usage|usageMetadata)"\s*:')


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    model: str | None = None

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens

    def merge(self, other: Usage) -> Usage:
        return Usage(
            max(self.input_tokens, other.input_tokens),
            max(self.output_tokens, other.output_tokens),
            self.model or other.model,
        )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _from_usage(usage: Any) -> tuple[int, int]:
    if not isinstance(usage, dict):
        return 0, 0
    if "promptTokenCount" in usage or "candidatesTokenCount" in usage:  # Google
        out = _int(usage.get("candidatesTokenCount")) + _int(usage.get("thoughtsTokenCount"))
        return _int(usage.get("promptTokenCount")), out
    inp = (
        _int(usage.get("input_tokens"))
        + _int(usage.get("cache_creation_input_tokens"))
        + _int(usage.get("cache_read_input_tokens"))
        + _int(usage.get("prompt_tokens"))
    )
    out = _int(usage.get("output_tokens")) + _int(usage.get("completion_tokens"))
    return inp, out


def extract(doc: Any) -> Usage:
    """Usage from one decoded JSON document or SSE event (any of the supported shapes)."""
    if isinstance(doc, list):
        total = Usage()
        for item in doc:
            total = total.merge(extract(item))
        return total
    if not isinstance(doc, dict):
        return Usage()
    found = Usage()
    for holder in (doc, doc.get("message"), doc.get("response")):
        if isinstance(holder, dict):
            inp, out = _from_usage(holder.get("usage") or holder.get("usageMetadata"))
            model = holder.get("model") or holder.get("modelVersion")
            found = found.merge(Usage(inp, out, model if isinstance(model, str) else None))
    return found


def content_chars(doc: Any, depth: int = 0) -> int:
    """Characters of generated content in one decoded stream event (any supported shape)."""
    if depth > 8:
        return 0
    total = 0
    if isinstance(doc, dict):
        for key, value in doc.items():
            if isinstance(value, str):
                if key in _CONTENT_KEYS:
                    total += len(value)
            elif isinstance(value, (dict, list)):
                total += content_chars(value, depth + 1)
    elif isinstance(doc, list):
        for item in doc:
            total += content_chars(item, depth + 1)
    return total


@dataclass(frozen=True, slots=True)
class Reading:
    """What the meter saw of one answer."""

    usage: Usage = Usage()  # the vendor's own figures (cumulative maxima)
    streamed_output_tokens: int = 0  # estimate of the output that passed (for cut answers)
    exact: bool = True  # False: the body was too large to be read whole


class Meter:
    """Fed each response chunk as it is forwarded; `finish` says what passed.

    SSE: every `data:` line is decoded once, for usage and for its content characters. JSON: the
    body is parsed at its end; past MAX_JSON_BYTES only its last TAIL_BYTES are kept, and the last
    `usage` object in them is read (the vendors put it at the end).
    """

    def __init__(self, content_type: str) -> None:
        self._sse = content_type.lower().startswith("text/event-stream")
        self._buffer = bytearray()
        self._overflow = False
        self._size = 0
        self._chars = 0
        self.usage = Usage()

    def feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        self._buffer += chunk
        if self._sse:
            self._drain_lines()
        elif len(self._buffer) > MAX_JSON_BYTES:
            self._overflow = True
        if self._overflow and len(self._buffer) > TAIL_BYTES:
            del self._buffer[:-TAIL_BYTES]

    def _drain_lines(self) -> None:
        end = self._buffer.rfind(b"\n")
        if end < 0:
            if len(self._buffer) > MAX_JSON_BYTES:
                self._overflow = True  # one line that long: no event; its tail is dropped
            return
        lines = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        for line in lines.split(b"\n"):
            if line.startswith(b"data:"):
                self._absorb(line[5:])

    def _absorb(self, payload: bytes | bytearray) -> None:
        # Not JSON (e.g. "[DONE]"): nothing to count. (try, not contextlib.suppress: this runs
        # for every event of every stream.)
        try:
            doc = json.loads(payload)
            if b"sage" in payload:  # only events that can carry usage are searched for it
                self.usage = self.usage.merge(extract(doc))
            if self._sse:
                self._chars += content_chars(doc)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            pass

    def _absorb_tail(self) -> None:
        tail = bytes(self._buffer)
        found = list(_USAGE_KEY.finditer(tail))
        if not found:
            return
        last = found[-1]
        with contextlib.suppress(UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            text = tail[last.end() :].decode("utf-8", "replace").lstrip()
            value, _ = json.JSONDecoder().raw_decode(text)
            self.usage = self.usage.merge(extract({last.group(1).decode(): value}))

    def finish(self) -> Reading:
        if self._sse:
            if self._buffer and not self._overflow:
                self._buffer += b"\n"
                self._drain_lines()
            streamed = math.ceil(self._chars / CHARS_PER_TOKEN)
        else:
            if self._overflow:
                self._absorb_tail()
            elif self._buffer:
                self._absorb(self._buffer)  # json reads a bytearray as it is: no copy
            streamed = math.ceil(self._size / CHARS_PER_TOKEN)
        self._buffer.clear()
        return Reading(self.usage, streamed, not self._overflow)


_EVENT_END = re.compile(rb"\r?\n\r?\n")


class UsageChunkStripper:
    """Drops OpenAI's final usage chunk (`choices: []` and a `usage` object) from an SSE stream.

    Used when the proxy asked for that chunk and the agent did not: the agent sees the stream it
    asked for. Whole events pass as soon as they are complete; a partial one waits for its end.
    """

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, chunk: bytes) -> bytes:
        self._pending += chunk
        out = bytearray()
        start = 0
        for end in _EVENT_END.finditer(self._pending):
            event = bytes(self._pending[start : end.end()])
            start = end.end()
            if not _is_usage_chunk(event):
                out += event
        del self._pending[:start]
        return bytes(out)

    def finish(self) -> bytes:
        rest = bytes(self._pending)
        self._pending.clear()
        return b"" if _is_usage_chunk(rest) else rest


def _is_usage_chunk(event: bytes) -> bool:
    if b"usage" not in event:
        return False
    for line in event.splitlines():
        if line.startswith(b"data:"):
            with contextlib.suppress(UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                doc = json.loads(line[5:])
                return (
                    isinstance(doc, dict)
                    and doc.get("choices") == []
                    and isinstance(doc.get("usage"), dict)
                )
    return False
