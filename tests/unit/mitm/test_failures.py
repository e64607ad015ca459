"""Budgets, upstream failures and client disconnects, each through a dedicated proxy."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx2
import pytest

from ironcurtain.mitm import ca
from ironcurtain.mitm.audit import Audit
from ironcurtain.mitm.providers import ConfigError
from ironcurtain.mitm.server import Proxy

from .harness import Stack, connect, post, raw, read_reply, start, tunnel


@pytest.fixture
def small_budget(tmp_path: Path) -> Iterator[Stack]:
    # The fake vendor reports 12 input + 34 output tokens per call: one call uses the budget.
    running = start(tmp_path, budget={"tokens": 40, "seconds": None, "cost_usd": None})
    yield running
    running.close()


def _sdk(stack: Stack) -> anthropic.Anthropic:
    http = httpx2.Client(verify=stack.client_context(), proxy=stack.url, timeout=10)
    return anthropic.Anthropic(api_key=stack.fakes["anthropic"], http_client=http, max_retries=2)


def test_an_exhausted_token_budget_refuses_with_403_in_the_providers_shape(
    small_budget: Stack,
) -> None:
    client = _sdk(small_budget)
    ask = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    client.messages.create(**ask)  # control: the first call fits the budget
    calls = len(small_budget.vendor.seen)
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        client.messages.create(**ask)
    assert "token budget exhausted (46 of 40 tokens used)" in str(info.value)
    # 403 is not retried by the SDK (max_retries=2 above): the vendor saw nothing more.
    assert len(small_budget.vendor.seen) == calls
    assert small_budget.audit()[-1]["rule"] == "budget"


def test_an_exhausted_request_budget_is_refused(tmp_path: Path) -> None:
    stack = start(
        tmp_path, budget={"tokens": None, "requests": 1, "seconds": None, "cost_usd": None}
    )
    try:
        key = b"x-api-key: " + stack.fakes["anthropic"].encode()
        assert raw(stack, "api.anthropic.com", post("/v1/messages", key)).status == 200
        reply = raw(stack, "api.anthropic.com", post("/v1/messages", key))
        assert reply.status == 403
        assert "request budget" in reply.json()["error"]["message"]
    finally:
        stack.close()


def test_an_unreachable_upstream_answers_502_in_the_providers_shape(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        stack = start(tmp_path, upstream={"api.openai.com": {"address": f"127.0.0.1:{port}"}})
        try:
            key = b"authorization: Bearer " + stack.fakes["openai"].encode()
            request = post("/v1/chat/completions", key, host=b"api.openai.com")
            reply = raw(stack, "api.openai.com", request)
        finally:
            stack.close()
    assert reply.status == 502
    assert reply.json()["error"]["type"] == "server_error"
    assert "api.openai.com unreachable" in reply.json()["error"]["message"]
    # The address we dialled (an internal one in a session) is named nowhere.
    assert "127.0.0.1" not in reply.body.decode()
    assert str(port) not in reply.body.decode()
    assert str(port) not in (tmp_path / "audit.jsonl").read_text()


def test_an_upstream_with_an_untrusted_certificate_is_refused_with_502(tmp_path: Path) -> None:
    # The vendor's CA is not trusted for api.anthropic.com here: verification must fail.
    stack = start(tmp_path, untrusted=("api.anthropic.com",))
    try:
        key = b"x-api-key: " + stack.fakes["anthropic"].encode()
        reply = raw(stack, "api.anthropic.com", post("/v1/messages", key))
        seen = len(stack.vendor.seen)
    finally:
        stack.close()
    assert reply.status == 502
    assert "certificate is not trusted" in reply.json()["error"]["message"]
    assert seen == 0


def test_an_upstream_that_never_answers_gets_504(stack: Stack) -> None:
    key = b"x-api-key: " + stack.fakes["anthropic"].encode()
    body = b'{"model":"hang","max_tokens":5,"messages":[]}'
    reply = raw(stack, "api.anthropic.com", post("/v1/messages", key, body))
    assert reply.status == 504  # response_timeout_s is 3 s in the harness
    assert reply.json()["error"]["type"] == "timeout_error"


def test_a_client_that_goes_away_cancels_the_upstream_request(stack: Stack) -> None:
    stack.close_gate()
    aborted = stack.vendor.aborted
    key = b"x-api-key: " + stack.fakes["anthropic"].encode()
    body = json.dumps({"model": "gated", "max_tokens": 5, "messages": [], "stream": True})
    sock = tunnel(stack, "api.anthropic.com")
    sock.sendall(post("/v1/messages", key, body.encode()))
    head = sock.recv(65536)
    assert b"200" in head.split(b"\r\n", 1)[0]  # the stream began
    sock.close()
    stack.audit_until(lambda line: line.get("decision") == "cancelled")
    # The vendor notices the closed connection on its own turn of the loop: wait for it.
    stack.until(lambda: stack.vendor.aborted == aborted + 1)


def test_keep_alive_serves_several_requests_on_one_tunnel(stack: Stack) -> None:
    key = b"x-api-key: " + stack.fakes["anthropic"].encode()
    with tunnel(stack, "api.anthropic.com") as sock:
        for _ in range(3):
            sock.sendall(post("/v1/messages", key))
            assert read_reply(sock, b"POST").status == 200


def test_connections_past_the_limit_are_refused(tmp_path: Path) -> None:
    stack = start(tmp_path, limits={"max_connections": 2})
    try:
        held = [tunnel(stack, "api.anthropic.com") for _ in range(2)]
        sock, reply = connect(stack.port, "api.anthropic.com:443")
        sock.close()
        assert reply.status == 503
        assert "too many connections" in reply.body.decode()
        held.pop().close()
        stack.audit_until(lambda line: line["rule"] == "connections")
        stack.until(lambda: stack.proxy.connections < 2)
        # control: once one closes, a new connection is served again (the count went down)
        with tunnel(stack, "api.anthropic.com") as again:
            again.sendall(post("/v1/messages", b"x-api-key: " + stack.fakes["anthropic"].encode()))
            assert read_reply(again, b"POST").status == 200
        for sock in held:
            sock.close()
    finally:
        stack.close()


@pytest.mark.parametrize("real", ["sk-ant-real\r\nx-evil: 1", "sk-ant real", "sk-ant-\x00"])
def test_a_real_key_that_is_not_a_header_safe_token_stops_the_proxy_starting(
    tmp_path: Path, real: str
) -> None:
    # Real keys reach the vendor's request head without h11's validation (it runs once, on
    # parsed input), so a key that could inject a header must be refused before listening.
    stack = start(tmp_path)
    try:
        authority = ca.load(stack.dir / "ca")
        with pytest.raises(ConfigError, match="header-safe"):
            Proxy(
                stack.proxy.settings,
                authority,
                {"anthropic": real},
                Audit.open(stack.dir / "refused.jsonl"),
            )
    finally:
        stack.close()
