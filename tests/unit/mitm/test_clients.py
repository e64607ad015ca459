"""Control tests: real clients (anthropic and openai SDKs, curl) through the proxy succeed.

These must pass, so a proxy that refuses everything cannot look secure. Each client uses the
proxy through HTTPS_PROXY and trusts our CA only.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import anthropic
import httpx2
import openai
import pytest

from .harness import REAL, Stack


@pytest.fixture
def http(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx2.Client]:
    monkeypatch.setenv("HTTPS_PROXY", stack.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with httpx2.Client(verify=stack.client_context(), trust_env=True, timeout=10) as client:
        yield client


def _anthropic(stack: Stack, http: httpx2.Client) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=stack.fakes["anthropic"], http_client=http, max_retries=0)


def _openai(stack: Stack, http: httpx2.Client) -> openai.OpenAI:
    return openai.OpenAI(api_key=stack.fakes["openai"], http_client=http, max_retries=0)


def test_anthropic_sdk_call_reaches_the_vendor_with_the_real_key(
    stack: Stack, http: httpx2.Client
) -> None:
    message = _anthropic(stack, http).messages.create(
        model="claude-fake-1", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == "hello from the fake"
    seen = stack.vendor.seen[-1]
    assert seen.host == "api.anthropic.com"
    assert seen.headers["x-api-key"] == [REAL["anthropic"]]
    assert stack.fakes["anthropic"] not in json.dumps(seen.headers)
    # The proxy audits the response after the client has it: wait for the line (deadline).
    done = stack.audit_until(lambda e: e.get("event") == "response")[-1]
    assert (done["input_tokens"], done["output_tokens"], done["status"]) == (12, 34, 200)


def test_anthropic_stream_shows_its_first_event_before_the_vendor_finishes(
    stack: Stack, http: httpx2.Client
) -> None:
    stack.close_gate()
    client = _anthropic(stack, http)
    with client.messages.stream(
        model="gated", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        texts = stream.text_stream
        first = next(texts)  # the vendor is blocked on the gate until we open it below
        assert first == "first "
        assert stack.vendor.gate.is_set() is False
        stack.open_gate()
        assert "".join(texts) == "second"
    # The proxy audits the response after the client has it: wait for the line (deadline).
    done = stack.audit_until(lambda e: e.get("event") == "response")[-1]
    assert (done["input_tokens"], done["output_tokens"]) == (12, 34)


def test_openai_sdk_chat_call_reaches_the_vendor_with_the_real_bearer_key(
    stack: Stack, http: httpx2.Client
) -> None:
    reply = _openai(stack, http).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "hello from the fake"
    assert stack.vendor.seen[-1].headers["authorization"] == [f"Bearer {REAL['openai']}"]


def test_openai_stream_shows_its_first_chunk_before_the_vendor_finishes(
    stack: Stack, http: httpx2.Client
) -> None:
    stack.close_gate()
    stream = _openai(stack, http).chat.completions.create(
        model="gated",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = iter(stream)
    assert next(chunks).choices[0].delta.content == "first "
    stack.open_gate()
    rest = list(chunks)
    assert rest[0].choices[0].delta.content == "second"
    # The proxy audits the response after the client has it: wait for the line (deadline).
    done = stack.audit_until(lambda e: e.get("event") == "response")[-1]
    assert (done["input_tokens"], done["output_tokens"]) == (12, 34)


def test_openai_models_listing_is_allowed(stack: Stack, http: httpx2.Client) -> None:
    assert [m.id for m in _openai(stack, http).models.list()] == ["fake-model"]


def test_vendor_errors_pass_through_in_the_vendors_own_shape(
    stack: Stack, http: httpx2.Client
) -> None:
    with pytest.raises(anthropic.InternalServerError) as info:
        _anthropic(stack, http).messages.create(
            model="error-500", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert "fake failure" in str(info.value)


def test_server_side_tools_are_stripped_before_the_vendor_sees_them(
    stack: Stack, http: httpx2.Client
) -> None:
    _anthropic(stack, http).messages.create(
        model="claude-fake-1",
        max_tokens=10,
        messages=[{"role": "user", "content": "hi"}],
        tools=[
            {"name": "mine", "description": "d", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search"},
            {"type": "code_execution_20250522", "name": "code_execution"},
        ],
    )
    sent = json.loads(stack.vendor.seen[-1].body)
    assert [t["name"] for t in sent["tools"]] == ["mine"]
    assert stack.vendor.seen[-1].headers["content-length"] == [str(len(stack.vendor.seen[-1].body))]


def test_upstream_connections_are_reused(stack: Stack, http: httpx2.Client) -> None:
    client = _anthropic(stack, http)
    ask = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    client.messages.create(**ask)
    before = stack.vendor.connections
    for _ in range(3):
        client.messages.create(**ask)
    assert stack.vendor.connections == before


def _curl(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HTTPS_PROXY": stack.url}
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    return subprocess.run(
        ["curl", "-sS", "--max-time", "10", "--cacert", str(stack.ca_file), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def test_curl_call_succeeds_through_the_proxy(stack: Stack) -> None:
    result = _curl(
        stack,
        "-H",
        f"x-api-key: {stack.fakes['anthropic']}",
        "-H",
        "content-type: application/json",
        "-d",
        '{"model":"m","max_tokens":5,"messages":[]}',
        "https://api.anthropic.com/v1/messages?beta=true",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["content"][0]["text"] == "hello from the fake"


def test_curl_google_generate_content_gets_its_key_swapped(stack: Stack) -> None:
    result = _curl(
        stack,
        "-H",
        f"x-goog-api-key: {stack.fakes['google']}",
        "-H",
        "content-type: application/json",
        "-d",
        '{"contents":[]}',
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:generateContent",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["usageMetadata"]["promptTokenCount"] == 12
    assert stack.vendor.seen[-1].headers["x-goog-api-key"] == [REAL["google"]]


def test_claude_code_startup_calls_are_answered_locally(stack: Stack) -> None:
    before = len(stack.vendor.seen)
    result = _curl(stack, "https://api.anthropic.com/api/claude_code/organizations/metrics_enabled")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"metrics_logging_enabled": False}
    assert len(stack.vendor.seen) == before


def test_openai_vendor_side_tools_are_stripped_and_functions_kept(
    stack: Stack, http: httpx2.Client
) -> None:
    function = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    mcp = {"type": "mcp", "server_label": "x", "server_url": "https://evil.example/mcp"}
    _openai(stack, http).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"tools": [function, mcp]},
    )
    assert json.loads(stack.vendor.seen[-1].body)["tools"] == [function]
