"""Each request's spend bound, read from its body as provider data says (tables)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.mitm import bounds, providers
from ironcurtain.mitm.errors import Refusal
from ironcurtain.mitm.providers import ConfigError

BUILTIN = providers.builtin()


def _spec(provider: str, endpoint: str) -> bounds.Spec | None:
    p = BUILTIN[provider]
    return p.meter_for(next(e for e in p.endpoints if str(e) == endpoint))


MESSAGES = _spec("anthropic", "POST /v1/messages")
CHAT = _spec("openai", "POST /v1/chat/completions")
RESPONSES = _spec("openai", "POST /v1/responses")
GEMINI = _spec("google", "POST /v1beta/models/*:generateContent")
GEMINI_PATH = "/v1beta/models/gemini-2.5-flash:generateContent"


def _body(doc: object) -> bytes:
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("spec", "doc", "path", "output", "model"),
    [
        (
            MESSAGES,
            {"model": "claude-x", "max_tokens": 300, "messages": []},
            "/v1/messages",
            300,
            "claude-x",
        ),
        (
            CHAT,
            {"model": "gpt-4o", "max_completion_tokens": 50},
            "/v1/chat/completions",
            50,
            "gpt-4o",
        ),
        (CHAT, {"model": "gpt-4o", "max_tokens": 70}, "/v1/chat/completions", 70, "gpt-4o"),
        # both spellings: the larger holds (whichever the vendor reads is within the reservation)
        (CHAT, {"max_tokens": 70, "max_completion_tokens": 90}, "/v1/chat/completions", 90, None),
        # n answers each up to the bound
        (CHAT, {"max_completion_tokens": 50, "n": 4}, "/v1/chat/completions", 200, None),
        (RESPONSES, {"model": "gpt-4.1", "max_output_tokens": 80}, "/v1/responses", 80, "gpt-4.1"),
        (
            GEMINI,
            {"generationConfig": {"maxOutputTokens": 64, "candidateCount": 2}},
            GEMINI_PATH,
            128,
            "gemini-2.5-flash",
        ),
    ],
)
def test_the_output_bound_is_read_from_the_body(
    spec: bounds.Spec, doc: dict, path: str, output: int, model: str | None
) -> None:
    body = _body(doc)
    forwarded, bound = bounds.prepare(spec, body, path)
    assert forwarded == body  # nothing to add: byte-identical
    assert bound.output_tokens == output
    assert bound.model == model
    assert bound.input_tokens == math.ceil(len(body) / bounds.INPUT_BYTES_PER_TOKEN)


@pytest.mark.parametrize(
    ("spec", "doc", "field"),
    [
        (CHAT, {"model": "gpt-4o", "messages": []}, ("max_completion_tokens",)),
        (RESPONSES, {"model": "gpt-4.1", "input": "x"}, ("max_output_tokens",)),
        (GEMINI, {"contents": []}, ("generationConfig", "maxOutputTokens")),
        (GEMINI, {"generationConfig": {"temperature": 0}}, ("generationConfig", "maxOutputTokens")),
    ],
)
def test_a_missing_bound_is_defaulted_in_the_body_so_the_vendor_holds_it(
    spec: bounds.Spec, doc: dict, field: tuple[str, ...]
) -> None:
    forwarded, bound = bounds.prepare(spec, _body(doc), GEMINI_PATH)
    sent = json.loads(forwarded)
    for part in field:
        sent = sent[part]
    assert sent == spec.default == bound.output_tokens


@pytest.mark.parametrize(
    ("spec", "body", "message"),
    [
        (MESSAGES, _body({"model": "m", "messages": []}), "'max_tokens' is required"),
        (MESSAGES, _body({"max_tokens": 0}), "positive integer"),
        (MESSAGES, _body({"max_tokens": -5}), "positive integer"),
        (MESSAGES, _body({"max_tokens": True}), "positive integer"),
        (MESSAGES, _body({"max_tokens": "100"}), "positive integer"),
        (MESSAGES, _body({"max_tokens": 1.5}), "positive integer"),
        (CHAT, _body({"max_completion_tokens": 5, "n": 0}), "'n' must be"),
        (GEMINI, _body({"generationConfig": "x"}), "must be an object"),
        # a repeated bound: we would read one copy, a vendor might use the other
        (MESSAGES, b'{"max_tokens":100000,"max_tokens":1}', "appears twice"),
        (MESSAGES, b'{"max_tokens":1,"max_tokens":100000}', "appears twice"),
        (CHAT, b'{"max_tokens":5,"stream":true,"stream":false}', "appears twice"),
        # the same key spelled with an escape is the same key
        (MESSAGES, b'{"max\\u005ftokens":100000,"max_tokens":1}', "appears twice"),
        (CHAT, b'{"n":1,"\\u006e":50,"max_tokens":5}', "appears twice"),
        # unmeterable: background responses run after the answer
        (RESPONSES, _body({"max_output_tokens": 5, "background": True}), "'background'"),
        (RESPONSES, _body({"max_output_tokens": 5, "background": "yes"}), "'background'"),
        (RESPONSES, _body({"max_output_tokens": 5, "background": 1}), "'background'"),
        (CHAT, _body({"max_tokens": 5, "stream": True, "stream_options": "x"}), "stream_options"),
        (MESSAGES, b"", "not JSON"),
        (MESSAGES, b"[1]", "not a JSON object"),
        (MESSAGES, b"{", "not JSON"),
    ],
)
def test_a_body_whose_spend_cannot_be_bounded_is_refused(
    spec: bounds.Spec, body: bytes, message: str
) -> None:
    with pytest.raises(Refusal) as info:
        bounds.prepare(spec, body, "/v1/x")
    assert (info.value.status, info.value.rule) == (400, "budget")
    assert message in info.value.reason


def test_background_false_is_a_normal_request() -> None:
    _, bound = bounds.prepare(RESPONSES, _body({"max_output_tokens": 5, "background": False}), "")
    assert bound.output_tokens == 5


@pytest.mark.parametrize(
    ("options", "injected"),
    [
        (None, True),
        ({}, True),
        ({"include_usage": False}, True),
        ({"include_usage": True}, False),  # the agent asked: it sees the chunk
    ],
)
def test_openai_chat_streams_are_asked_for_their_usage(
    options: dict | None, injected: bool
) -> None:
    doc: dict = {"model": "gpt-4o", "max_tokens": 5, "stream": True}
    if options is not None:
        doc["stream_options"] = options
    forwarded, bound = bounds.prepare(CHAT, _body(doc), "/v1/chat/completions")
    assert json.loads(forwarded)["stream_options"]["include_usage"] is True
    assert bound.strip_usage_chunk is injected


def test_a_chat_request_without_stream_gets_no_stream_options() -> None:
    body = _body({"max_tokens": 5})
    forwarded, bound = bounds.prepare(CHAT, body, "/v1/chat/completions")
    assert forwarded == body
    assert not bound.strip_usage_chunk


def test_a_free_endpoint_reserves_nothing() -> None:
    assert bounds.prepare(None, b"anything", "/v1/messages/count_tokens") == (
        b"anything",
        bounds.FREE,
    )


@given(st.binary(max_size=300))
def test_prepare_either_refuses_or_bounds(body: bytes) -> None:
    try:
        _, bound = bounds.prepare(CHAT, body, "/v1/chat/completions")
    except Refusal as refusal:
        status = refusal.status
    else:
        status = 200 if bound.output_tokens > 0 else 0
    assert status in (200, 400)


@pytest.mark.parametrize(
    ("meter", "message"),
    [
        ({}, "needs an entry"),
        ({"POST /v1/x": {"output": []}}, "non-empty list"),
        ({"POST /v1/x": {"output": ["m"], "default": 0}}, "positive integer"),
        ({"POST /v1/x": {"output": ["m"], "surprise": 1}}, "surprise"),
        ({"POST /v1/x": "paid"}, "'free' or a mapping"),
        ({"POST /v1/x": "free", "POST /v1/y": "free"}, "is not an endpoint"),
    ],
)
def test_every_endpoint_needs_a_valid_meter_entry(meter: dict, message: str) -> None:
    doc = {
        "providers": {
            "x": {
                "hosts": ["llm.example"],
                "auth": "none",
                "endpoints": [{"call": "POST /v1/x", "body": "openai-chat"}],
                "meter": meter,
            }
        }
    }
    with pytest.raises(ConfigError, match=message):
        providers.parse(doc)


SHAPE = {"messages": "anthropic-messages", "chat": "openai-chat", "responses": "openai-responses"}
SPECS = {"messages": MESSAGES, "chat": CHAT, "responses": RESPONSES, "gemini": GEMINI}


def _admitted(kind: str, doc: dict) -> tuple[bytes, dict]:
    from ironcurtain.mitm import shapes

    canonical, parsed = shapes.admit_parsed(SHAPE.get(kind, kind), _body(doc), shapes.Tools())
    assert parsed is not None
    return canonical, parsed


@pytest.mark.parametrize(
    ("kind", "doc", "path"),
    [
        ("messages", {"model": "claude-x", "max_tokens": 300, "messages": []}, "/v1/messages"),
        ("chat", {"model": "gpt-4o", "stream": True, "messages": []}, "/v1/chat/completions"),
        ("chat", {"max_tokens": 7, "n": 3, "temperature": 0.1, "user": "\u00e9"}, "/v1/chat"),
        ("responses", {"model": "gpt-4.1", "input": "hi"}, "/v1/responses"),
        ("gemini", {"contents": [], "generationConfig": {"temperature": 1e-7}}, GEMINI_PATH),
    ],
)
def test_the_document_read_by_shapes_gives_what_a_fresh_parse_gives(
    kind: str, doc: dict, path: str
) -> None:
    """server.py hands bounds the document shapes.admit_parsed checked (one parse, not two):
    the forwarded bytes and the bound are those of parsing the canonical body again."""
    canonical, parsed = _admitted(kind, doc)
    spec = SPECS[kind]
    assert bounds.prepare(spec, canonical, path, parsed) == bounds.prepare(spec, canonical, path)


@pytest.mark.parametrize(
    ("kind", "doc"),
    [
        ("messages", {"messages": []}),  # the required bound is missing
        ("responses", {"max_output_tokens": 5, "background": True}),
        ("messages", {"max_tokens": 0}),
        ("chat", {"max_tokens": 5, "stream": True, "stream_options": 3}),
        ("gemini", {"generationConfig": {"maxOutputTokens": 5, "candidateCount": -1}}),
    ],
)
def test_refusals_are_the_same_with_the_shared_document(kind: str, doc: dict) -> None:
    canonical, parsed = _admitted(kind, doc)
    with pytest.raises(Refusal) as fresh:
        bounds.prepare(SPECS[kind], canonical, "/p")
    with pytest.raises(Refusal) as shared:
        bounds.prepare(SPECS[kind], canonical, "/p", parsed)
    assert (shared.value.rule, shared.value.reason) == (fresh.value.rule, fresh.value.reason)
