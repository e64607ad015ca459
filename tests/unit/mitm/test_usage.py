"""The meter's readings for cut streams and large bodies, and the usage-chunk stripper."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.mitm.usage import (
    MAX_JSON_BYTES,
    Meter,
    Reading,
    Usage,
    UsageChunkStripper,
    content_chars,
)


def _sse(*docs: object) -> bytes:
    return b"".join(b"data: " + json.dumps(d).encode() + b"\n\n" for d in docs)


@pytest.mark.parametrize(
    ("doc", "chars"),
    [
        ({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "abcd"}}, 4),
        ({"type": "content_block_delta", "delta": {"partial_json": '{"a":1}'}}, 7),
        ({"type": "content_block_delta", "delta": {"thinking": "hmm"}}, 3),
        ({"choices": [{"delta": {"role": "assistant", "content": "hello"}}]}, 5),
        ({"choices": [{"delta": {"tool_calls": [{"function": {"arguments": "{}"}}]}}]}, 2),
        ({"type": "response.output_text.delta", "delta": "four"}, 4),
        ({"candidates": [{"content": {"parts": [{"text": "hi"}], "role": "model"}}]}, 2),
        ({"type": "message_start", "message": {"model": "claude", "id": "msg_1"}}, 0),
        ("just a string", 0),
    ],
)
def test_content_characters_are_counted_in_every_vendors_deltas(doc: object, chars: int) -> None:
    assert content_chars(doc) == chars


def test_a_cut_anthropic_stream_reads_as_what_it_streamed() -> None:
    start = {
        "type": "message_start",
        "message": {"usage": {"input_tokens": 12, "output_tokens": 1}},
    }
    delta = {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "tok "}}
    meter = Meter("text/event-stream")
    meter.feed(_sse(start, *[delta] * 200))
    assert meter.finish() == Reading(Usage(12, 1), 200, True)


def test_a_json_body_over_the_limit_is_metered_from_its_tail() -> None:
    doc = {
        "content": [{"type": "text", "text": "x" * (MAX_JSON_BYTES + 1000)}],
        "usage": {"input_tokens": 12, "output_tokens": 34},
    }
    body = json.dumps(doc).encode()
    meter = Meter("application/json")
    for i in range(0, len(body), 65536):
        meter.feed(body[i : i + 65536])
    reading = meter.finish()
    assert reading.usage == Usage(12, 34)
    assert not reading.exact  # the charge keeps the reservation as a floor


def test_a_usage_key_quoted_inside_content_is_not_taken_for_the_usage() -> None:
    text = "x" * MAX_JSON_BYTES + '"usage": {"input_tokens": 1, "output_tokens": 1}'
    body = json.dumps({"text": text, "usage": {"input_tokens": 12, "output_tokens": 34}}).encode()
    meter = Meter("application/json")
    meter.feed(body)
    assert meter.finish().usage == Usage(12, 34)


def test_a_large_body_keeps_only_its_tail_in_memory() -> None:
    meter = Meter("application/json")
    for _ in range(200):
        meter.feed(b"x" * 65536)  # 12.5 MiB
    assert len(meter._buffer) <= MAX_JSON_BYTES + 65536


USAGE_CHUNK = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}\n\n'
STREAM = (
    b'data: {"choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n'
    + USAGE_CHUNK
    + b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("size", [1, 5, 17, 64, 10_000])
def test_the_usage_chunk_is_stripped_whatever_the_chunking(size: int) -> None:
    stripper = UsageChunkStripper()
    out = b"".join(stripper.feed(STREAM[i : i + size]) for i in range(0, len(STREAM), size))
    out += stripper.finish()
    assert out == STREAM.replace(USAGE_CHUNK, b"")


def test_content_that_mentions_usage_is_not_stripped() -> None:
    event = b'data: {"choices":[{"delta":{"content":"usage: {}"}}],"usage":null}\n\n'
    stripper = UsageChunkStripper()
    assert stripper.feed(event) + stripper.finish() == event


def test_whole_events_pass_at_once_and_a_partial_one_waits() -> None:
    stripper = UsageChunkStripper()
    first = b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
    assert stripper.feed(first + b'data: {"choi') == first
    assert stripper.feed(b'ces":[]}\n\n') == b'data: {"choices":[]}\n\n'  # no usage: kept


@given(st.binary(max_size=400))
def test_the_stripper_never_raises_and_keeps_what_is_not_a_usage_chunk(data: bytes) -> None:
    stripper = UsageChunkStripper()
    out = stripper.feed(data) + stripper.finish()
    assert len(out) <= len(data)
