"""Request bodies (shapes.py): what each provider's shape admits, strips and refuses."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ironcurtain.mitm import shapes
from ironcurtain.mitm.errors import Refusal
from ironcurtain.mitm.shapes import Tools

DEEP = hsettings(max_examples=1000 if os.environ.get("CI") == "true" else 100, deadline=None)
ANTHROPIC = Tools(("custom",), strip=True)
OPENAI = Tools(("function", "custom"), strip=True)
CLAUDE_CODE = json.loads((Path(__file__).parent / "data" / "claude_code_request.json").read_text())
PNG = "iVBORw0KGgo="


def _admit(shape: str, doc: Any, tools: Tools = ANTHROPIC) -> dict[str, Any]:
    return json.loads(shapes.admit(shape, json.dumps(doc).encode(), tools))


def _refused(shape: str, body: bytes | Any, tools: Tools = ANTHROPIC) -> Refusal:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(Refusal) as info:
        shapes.admit(shape, raw, tools)
    assert info.value.status == 400
    return info.value


def _user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": list(blocks)}]}


# ---- the controls: what real clients send is admitted unchanged --------------------------------


def test_the_real_claude_code_request_is_admitted_unchanged() -> None:
    body = CLAUDE_CODE["body"]
    assert _admit("anthropic-messages", body) == body


@pytest.mark.parametrize(
    ("shape", "doc", "tools"),
    [
        (
            "anthropic-messages",
            _user(
                {"type": "text", "text": "look"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                },
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "x"},
                },
            ),
            ANTHROPIC,
        ),
        (
            "openai-chat",
            {
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "look"},
                            {
                                "type": "image_url",
                                "image_url": {"url": f"data:image/png;base64,{PNG}"},
                            },
                            {
                                "type": "file",
                                "file": {
                                    "file_data": "data:application/pdf;base64,AA",
                                    "filename": "a.pdf",
                                },
                            },
                        ],
                    },
                ],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
                "stream": True,
                "stream_options": {"include_usage": True},
            },
            OPENAI,
        ),
        (
            "openai-responses",
            {
                "model": "gpt-4.1",
                "input": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_text", "text": "look"},
                            {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"},
                            {
                                "type": "input_file",
                                "filename": "a.pdf",
                                "file_data": "data:application/pdf;base64,AA",
                            },
                        ],
                    },
                    {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "c", "output": "ok"},
                ],
                "tools": [{"type": "function", "name": "f", "parameters": {}}],
            },
            OPENAI,
        ),
        (
            "gemini",
            {
                "contents": [
                    {
                        "role": "user",
                        "parts": [
                            {"text": "look"},
                            {"inlineData": {"mimeType": "image/png", "data": PNG}},
                        ],
                    }
                ],
                "systemInstruction": {"parts": [{"text": "be brief"}]},
                "tools": [{"functionDeclarations": [{"name": "f"}]}],
                "generationConfig": {"maxOutputTokens": 5},
            },
            Tools(),
        ),
    ],
)
def test_legitimate_bodies_with_inline_media_are_admitted_unchanged(
    shape: str, doc: dict[str, Any], tools: Tools
) -> None:
    assert _admit(shape, doc, tools) == doc


def test_what_is_forwarded_is_the_canonical_serialisation_not_the_agents_bytes() -> None:
    raw = b'{ "model" : "m",\n "max_tokens": 5, "messages": [] }'
    assert shapes.admit("anthropic-messages", raw, ANTHROPIC) == (
        b'{"model":"m","max_tokens":5,"messages":[]}'
    )


# ---- finding 1: the vendor as a fetcher -------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "doc", "field"),
    [
        (
            "anthropic-messages",
            _user({"type": "image", "source": {"type": "url", "url": "https://evil.test/x.png"}}),
            "messages[0].content[0].source.type",
        ),
        (
            "anthropic-messages",
            _user({"type": "document", "source": {"type": "url", "url": "https://evil.test/d"}}),
            "messages[0].content[0].source.type",
        ),
        (
            "anthropic-messages",
            _user({"type": "document", "source": {"type": "file", "file_id": "file_abc"}}),
            "messages[0].content[0].source.type",
        ),
        (
            "anthropic-messages",
            _user(
                {
                    "type": "tool_result",
                    "tool_use_id": "t",
                    "content": [
                        {"type": "image", "source": {"type": "url", "url": "https://e.test"}}
                    ],
                }
            ),
            "messages[0].content[0].content[0].source.type",
        ),
        (
            "anthropic-messages",
            _user({"type": "container_upload", "file_id": "file_abc"}),
            "messages[0].content[0].type",
        ),
        (
            "anthropic-messages",
            {
                "model": "m",
                "system": [{"type": "image", "source": {"type": "url", "url": "https://e"}}],
            },
            "system[0].type",
        ),
        (
            "openai-chat",
            {
                "model": "gpt-4o",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "https://evil.test/x.png?data=secret"},
                            }
                        ],
                    }
                ],
            },
            "messages[0].content[0].image_url.url",
        ),
        (
            "openai-chat",
            {
                "model": "gpt-4o",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "HTTP://evil.test/x.png"}}
                        ],
                    }
                ],
            },
            "messages[0].content[0].image_url.url",
        ),
        (
            "openai-chat",
            {
                "model": "gpt-4o",
                "messages": [
                    {"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}
                ],
            },
            "messages[0].content[0].file",
        ),
        (
            "openai-responses",
            {
                "model": "gpt-4.1",
                "input": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_file", "file_url": "https://evil.test/doc.pdf"}
                        ],
                    }
                ],
            },
            "input[0].content[0].file_url",
        ),
        (
            "openai-responses",
            {
                "model": "gpt-4.1",
                "input": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_image", "image_url": "https://evil.test/x.png"}
                        ],
                    }
                ],
            },
            "input[0].content[0].image_url",
        ),
        (
            "openai-responses",
            {
                "model": "gpt-4.1",
                "input": [
                    {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_image", "file_id": "file-abc"}],
                    }
                ],
            },
            "input[0].content[0].file_id",
        ),
        (
            "openai-responses",
            {
                "model": "gpt-4.1",
                "input": [
                    {
                        "type": "function_call_output",
                        "call_id": "c",
                        "output": [{"type": "input_image", "image_url": "https://e.test/x"}],
                    }
                ],
            },
            "input[0].output[0].image_url",
        ),
        (
            "openai-responses",
            {"model": "gpt-4.1", "input": [{"type": "mcp_call", "server_label": "x"}]},
            "input[0].type",
        ),
        (
            "openai-responses",
            {"model": "gpt-4.1", "prompt": {"id": "pmpt_1"}},
            "prompt",
        ),
        (
            "gemini",
            {
                "contents": [
                    {
                        "parts": [
                            {
                                "fileData": {
                                    "fileUri": "https://evil.test/x",
                                    "mimeType": "text/plain",
                                }
                            }
                        ]
                    }
                ]
            },
            "contents[0].parts[0].fileData",
        ),
        (
            "gemini",
            {"contents": [{"parts": [{"file_data": {"file_uri": "gs://b/x"}}]}]},
            "contents[0].parts[0].file_data",
        ),
        (
            "gemini",
            {
                "contents": [],
                "systemInstruction": {"parts": [{"fileData": {"fileUri": "https://e"}}]},
            },
            "systemInstruction.parts[0].fileData",
        ),
        (
            "anthropic-messages",
            {"model": "m", "url_context": {"urls": ["https://e"]}},
            "url_context",
        ),
        ("openai-chat", {"model": "gpt-4o", "brand_new_fetcher": {}}, "brand_new_fetcher"),
        ("gemini", {"contents": [], "urlContext": {}}, "urlContext"),
    ],
)
def test_content_that_makes_the_vendor_fetch_is_refused_naming_the_field(
    shape: str, doc: dict[str, Any], field: str
) -> None:
    refusal = _refused(shape, doc, OPENAI if shape.startswith("openai") else ANTHROPIC)
    assert refusal.rule == "content"
    assert refusal.reason.startswith(f"{field}:"), refusal.reason
    assert "evil.test" not in refusal.reason  # the URL itself is never echoed


# ---- vendor-side tools, connectors and search: stripped (or refused, per provider data) -------


@pytest.mark.parametrize(
    ("shape", "doc", "kept", "tools"),
    [
        (
            "anthropic-messages",
            {
                "model": "m",
                "mcp_servers": [{"type": "url", "url": "https://evil.test/mcp"}],
                "tools": [
                    {"name": "a", "input_schema": {}},
                    {"type": "custom", "name": "b", "input_schema": {}},
                    {"type": "web_search_20250305", "name": "web_search"},
                    {"type": "web_fetch_20250910", "name": "web_fetch"},
                    {"type": "mcp_toolset", "mcp_server_name": "x"},
                ],
            },
            {
                "model": "m",
                "tools": [
                    {"name": "a", "input_schema": {}},
                    {"type": "custom", "name": "b", "input_schema": {}},
                ],
            },
            ANTHROPIC,
        ),
        (
            "openai-chat",
            {
                "model": "gpt-4o",
                "messages": [],
                "web_search_options": {"search_context_size": "low"},
            },
            {"model": "gpt-4o", "messages": []},
            OPENAI,
        ),
        (
            "openai-responses",
            {
                "model": "gpt-4.1",
                "tools": [
                    {"type": "function", "name": "f", "parameters": {}},
                    {"type": "web_search_preview"},
                    {"type": "mcp", "server_label": "x", "server_url": "https://evil.test/mcp"},
                    {"type": "code_interpreter", "container": {"type": "auto"}},
                ],
            },
            {"model": "gpt-4.1", "tools": [{"type": "function", "name": "f", "parameters": {}}]},
            OPENAI,
        ),
        (
            "gemini",
            {
                "contents": [],
                "tools": [
                    {"functionDeclarations": [{"name": "f"}]},
                    {"googleSearch": {}},
                    {"codeExecution": {}},
                    {"urlContext": {}},
                ],
            },
            {"contents": [], "tools": [{"functionDeclarations": [{"name": "f"}]}]},
            Tools(),
        ),
        (
            "anthropic-messages",
            {
                "model": "m",
                "tools": [{"type": "web_search_20250305", "name": "w"}],
                "tool_choice": {"type": "any"},
            },
            {"model": "m"},
            ANTHROPIC,
        ),
    ],
)
def test_vendor_side_tools_connectors_and_search_are_stripped_when_the_data_says_so(
    shape: str, doc: dict[str, Any], kept: dict[str, Any], tools: Tools
) -> None:
    assert _admit(shape, doc, tools) == kept


@pytest.mark.parametrize(
    ("shape", "doc", "field"),
    [
        ("anthropic-messages", {"model": "m", "mcp_servers": []}, "mcp_servers"),
        (
            "anthropic-messages",
            {"model": "m", "tools": [{"name": "a"}, {"type": "web_search_20250305"}]},
            "tools[1]",
        ),
        ("openai-chat", {"model": "m", "web_search_options": {}}, "web_search_options"),
        ("gemini", {"contents": [], "tools": [{"googleSearch": {}}]}, "tools[0]"),
    ],
)
def test_vendor_side_features_are_refused_when_the_provider_does_not_strip(
    shape: str, doc: dict[str, Any], field: str
) -> None:
    refusal = _refused(shape, doc, Tools(("custom", "function"), strip=False))
    assert refusal.reason.startswith(field)


# ---- finding 5: ambiguous JSON ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (
            b'{"model":"m","tools":[{"type":"web_search_20250305","name":"w"}],"tools":[]}',
            "duplicate key 'tools'",
        ),
        (
            b'{"model":"m","messages":[{"role":"user","role":"assistant","content":"x"}]}',
            "duplicate key 'role'",
        ),
        (b'{"model":"m","metadata":{"a":{"b":1,"b":2}}}', "duplicate key 'b'"),
        (
            b'{"model":"\\ud800","tools":[{"type":"web_search_20250305","name":"w"}]}',
            "lone surrogate",
        ),
        (b'{"model":"m","messages":[{"role":"user","content":"\\udc00"}]}', "lone surrogate"),
        (b'{"model":"m","temperature":NaN}', "not JSON"),
        (b'{"model":"m","temperature":1e400}', "out of range"),
        (b'{"model":"m"', "not valid JSON"),
        (b'{"model":"m"}\xff', "not valid JSON"),
        ('{"model":"m"}'.encode("utf-16"), "not valid JSON"),
        (b"[1]", "not a JSON object"),
        (b"", "not valid JSON"),
        (b"[" * 100_000, "not valid JSON"),
    ],
)
def test_ambiguous_or_malformed_json_is_refused_with_a_reason(body: bytes, said: str) -> None:
    refusal = _refused("anthropic-messages", body)
    assert refusal.rule == "json"
    assert said in refusal.reason


def test_an_escaped_surrogate_pair_is_one_character_and_admitted() -> None:
    body = b'{"model":"m","messages":[{"role":"user","content":"\\ud83d\\ude00"}]}'
    assert (
        json.loads(shapes.admit("anthropic-messages", body, ANTHROPIC))["messages"][0]["content"]
        == "\U0001f600"
    )


def test_an_endpoint_without_a_body_refuses_one() -> None:
    assert shapes.admit("none", b"", ANTHROPIC) == b""
    _refused("none", b"{}")


@DEEP
@given(st.binary(max_size=300))
def test_admission_either_refuses_or_returns_strict_json_without_vendor_tools(body: bytes) -> None:
    try:
        out = shapes.admit("anthropic-messages", body, ANTHROPIC)
    except Refusal as refusal:
        status = refusal.status
    else:
        status = 200
    assert status in (200, 400)
    if status == 400:
        return
    doc = json.loads(out)
    assert all(t.get("type") in (None, "custom") for t in doc.get("tools", []))
    assert "mcp_servers" not in doc


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=10,
)


@DEEP
@given(st.dictionaries(st.sampled_from(["model", "messages", "system", "tools", "x"]), JSON))
def test_any_json_object_is_refused_cleanly_or_admitted(doc: dict[str, Any]) -> None:
    statuses = set()
    for shape in ("anthropic-messages", "openai-chat", "openai-responses", "gemini"):
        try:
            shapes.admit(shape, json.dumps(doc).encode(), OPENAI)
        except Refusal as refusal:
            statuses.add(refusal.status)
    assert statuses <= {400}


# ---- namespaces (Codex groups its MCP tools in one) ---------------------------------------

CODEX = Tools(("function", "custom", "namespace"), strip=True)
FN = {"type": "function", "name": "filesystem__read_text_file", "parameters": {}}


def _space(*inner: dict[str, Any]) -> dict[str, Any]:
    return {"type": "namespace", "name": "mcp__ironcurtain__", "tools": list(inner)}


def test_a_namespace_of_client_tools_is_kept_as_sent() -> None:
    doc = {"model": "m", "tools": [_space(FN, {"type": "custom", "name": "c"}), FN]}
    assert _admit("openai-responses", doc, CODEX) == doc


@pytest.mark.parametrize(
    "hidden",
    [
        {"type": "web_search"},
        {"type": "web_search_preview"},
        {"type": "mcp", "server_label": "x", "server_url": "https://evil.test/mcp"},
        {"type": "code_interpreter", "container": {"type": "auto"}},
        {"type": "file_search", "vector_store_ids": ["vs_1"]},
        {"type": "WEB_SEARCH"},
        _space({"type": "web_search"}),  # a namespace in a namespace: never a client tool
        _space(FN),
    ],
)
def test_a_vendor_side_tool_hidden_in_a_namespace_is_stripped(hidden: dict[str, Any]) -> None:
    doc = {"model": "m", "tools": [_space(FN, hidden)]}
    assert _admit("openai-responses", doc, CODEX) == {"model": "m", "tools": [_space(FN)]}


def test_a_namespace_left_empty_is_stripped_and_so_is_the_tool_choice() -> None:
    doc = {"model": "m", "tools": [_space({"type": "web_search"})], "tool_choice": "auto"}
    assert _admit("openai-responses", doc, CODEX) == {"model": "m"}
    assert _admit("openai-responses", {"model": "m", "tools": [_space()]}, CODEX) == {"model": "m"}


def test_a_vendor_side_tool_in_a_namespace_is_refused_when_the_provider_does_not_strip() -> None:
    doc = {"model": "m", "tools": [_space(FN, {"type": "web_search"})]}
    refusal = _refused("openai-responses", doc, Tools(CODEX.client_types, strip=False))
    assert "runs on the vendor's side" in refusal.reason


def test_a_namespace_is_not_a_client_tool_where_the_data_does_not_say_so() -> None:
    doc = {"model": "m", "tools": [_space(FN), FN]}
    assert _admit("openai-responses", doc, OPENAI) == {"model": "m", "tools": [FN]}
