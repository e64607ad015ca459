"""Token usage read from responses as they stream past, without delaying them.

One parser covers the wire formats we meter: Anthropic JSON and SSE (`message_start` carries
input tokens, `message_delta` the running output count), OpenAI `usage` (chat and responses
APIs, JSON and SSE), Google `usageMetadata` (JSON, JSON-array stream, SSE). Counts in all of
them are cumulative, so the meter keeps the maximum seen per field.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

MAX_JSON_BYTES = 8 * 1024 * 1024  # non-streamed bodies above this are not metered (audited)


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


class Meter:
    """Fed each response chunk as it is forwarded; `usage` is read when the response ends."""

    def __init__(self, content_type: str) -> None:
        self._sse = content_type.lower().startswith("text/event-stream")
        self._buffer = bytearray()
        self._overflow = False
        self.usage = Usage()

    def feed(self, chunk: bytes) -> None:
        if self._overflow:
            return
        self._buffer += chunk
        if self._sse:
            self._drain_lines()
        elif len(self._buffer) > MAX_JSON_BYTES:
            self._overflow = True
            self._buffer.clear()

    def _drain_lines(self) -> None:
        end = self._buffer.rfind(b"\n")
        if end < 0:
            if len(self._buffer) > MAX_JSON_BYTES:
                self._overflow = True
                self._buffer.clear()
            return
        lines = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        for line in lines.split(b"\n"):
            # Only events that can carry usage are decoded: text deltas pass untouched.
            if line.startswith(b"data:") and (b"sage" in line):
                self._absorb(line[5:])

    def _absorb(self, payload: bytes) -> None:
        # Not JSON (e.g. "[DONE]"): nothing to count.
        with contextlib.suppress(UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            self.usage = self.usage.merge(extract(json.loads(payload)))

    def finish(self) -> Usage:
        if self._sse:
            if self._buffer:
                self._buffer += b"\n"
                self._drain_lines()
        elif self._buffer and not self._overflow:
            self._absorb(bytes(self._buffer))
        self._buffer.clear()
        return self.usage

    @property
    def complete(self) -> bool:
        """False when the body was too large to meter (the audit line says so)."""
        return not self._overflow
