"""A backend reached by URL (Streamable HTTP), not a child process: listed, policed, called."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
import uvicorn
import yaml
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from ironcurtain.mcpproxy.gate import RESOURCE_NOT_FOUND
from ironcurtain.mcpproxy.jsonrpc import RpcError
from ironcurtain.mcpproxy.service import ProxySettings, running_gate

POLICY = """\
version: 1
protected: {paths: ["${state_dir}"], names: [".env"]}
lists: {greetings: []}
servers:
  remote:
    tools:
      greet: {name: none}
rules:
  - name: remote-resources-and-prompts
    effect: allow
    reason: the remote's own notes and prompts
    server: remote
    tools: [resources/read, prompts/get]
  - name: greet-anyone
    effect: allow
    reason: greeting is harmless
    server: remote
    tools: [greet]
"""


@pytest.fixture
def remote_url() -> Iterator[str]:
    server = MCPServer("remote")

    @server.tool()
    def greet(name: str) -> str:
        """Say hello."""
        return f"hello, {name}"

    @server.resource("note://greeting", name="greeting", description="A greeting")
    def greeting() -> str:
        return "hello from a resource"

    @server.prompt(description="Greets someone")
    def welcome(who: str) -> str:
        return f"Welcome, {who}."

    @server.tool()
    def undeclared() -> str:
        """Not in the policy."""
        return "should never run"

    app = server.streamable_http_app(
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False)
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    web = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=lambda: anyio.run(web.serve, [sock]), daemon=True)
    thread.start()
    while not web.started:  # bounded by the join below failing loudly if start-up breaks
        thread.join(0.01)
        assert thread.is_alive(), "the remote MCP server did not start"
    yield f"http://127.0.0.1:{port}/mcp"
    web.should_exit = True
    thread.join(10)
    sock.close()


def test_a_url_backend_is_listed_and_policed(tmp_path: Path, remote_url: str) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "policy.yaml").write_text(POLICY)
    (policy / "servers.yaml").write_text(
        yaml.safe_dump({"mcpServers": {"remote": {"url": remote_url}}})
    )
    (tmp_path / "ws").mkdir()
    settings = ProxySettings(
        policy_dir=policy,
        workspace=tmp_path / "ws",
        audit_file=tmp_path / "audit" / "a.jsonl",
        state_dir=tmp_path / "state",
    )

    async def go() -> tuple[list[str], types.CallToolResult, types.CallToolResult]:
        with anyio.fail_after(30):
            async with running_gate(settings) as gate:
                names = [t["name"] for t in gate.tools()]
                allowed = await gate.call("remote__greet", {"name": "ada"})
                refused = await gate.call("remote__undeclared", {})
                return names, allowed, refused

    names, allowed, refused = anyio.run(go)
    assert set(names) == {"remote__greet", "remote__undeclared"}
    assert not allowed.is_error
    assert "hello, ada" in allowed.content[0].text
    assert refused.is_error
    assert "unknown-tool" in refused.content[0].text


def test_a_url_backends_resources_and_prompts_are_listed_and_decided(
    tmp_path: Path, remote_url: str
) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "policy.yaml").write_text(POLICY)
    (policy / "servers.yaml").write_text(
        yaml.safe_dump({"mcpServers": {"remote": {"url": remote_url}}})
    )
    (tmp_path / "ws").mkdir()
    settings = ProxySettings(
        policy_dir=policy,
        workspace=tmp_path / "ws",
        audit_file=tmp_path / "audit" / "a.jsonl",
        state_dir=tmp_path / "state",
    )

    async def go() -> tuple[Any, ...]:
        with anyio.fail_after(30):
            async with running_gate(settings) as gate:
                listed = await gate.list_resources()
                prompts = await gate.list_prompts()
                read = await gate.read_resource("note://greeting")
                got = await gate.get_prompt("remote__welcome", {"who": "ada"})
                try:
                    await gate.read_resource("note://missing")
                except RpcError as exc:
                    missing = exc.code
                return listed, prompts, read, got, missing

    listed, prompts, read, got, missing = anyio.run(go)
    assert [r["name"] for r in listed["resources"]] == ["remote__greeting"]
    assert [p["name"] for p in prompts["prompts"]] == ["remote__welcome"]
    assert read["contents"][0]["text"] == "hello from a resource"
    assert "Welcome, ada." in json.dumps(got)
    assert missing == RESOURCE_NOT_FOUND
