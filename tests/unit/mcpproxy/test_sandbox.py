"""Servers marked `sandbox: true` run only in the sandbox (or inline when asked), never by default
beside the proxy; the sandbox relays their tools to the proxy over Streamable HTTP."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import anyio
import mcp_types as types
import pytest
import yaml

from ironcurtain.mcpproxy import ProxySettings, running_gate
from ironcurtain.mcpproxy.cache import ToolCache
from ironcurtain.mcpproxy.config import (
    INLINE,
    BackendSpec,
    ConfigError,
    parse_backends,
    place,
)
from ironcurtain.mcpproxy.sandbox import serve_sandbox

from .conftest import BIN

GIT = BackendSpec(name="git", command="mcp-server-git", sandbox=True)
FS = BackendSpec(name="filesystem", command="mcp-server-filesystem", args=("/w",))


def test_inline_keeps_every_server_a_child_of_the_proxy() -> None:
    assert place((FS, GIT), INLINE) == (FS, GIT)


def test_no_sandbox_refuses_a_sandboxed_server_and_names_it() -> None:
    with pytest.raises(ConfigError, match=r"git.*sandbox"):
        place((FS, GIT), "")


def test_no_sandbox_is_fine_when_no_server_asks_for_one() -> None:
    assert place((FS,), "") == (FS,)


def test_a_sandbox_url_turns_only_the_sandboxed_servers_into_urls() -> None:
    placed = place((FS, GIT), "http://mcp-sandbox:8081")
    assert placed[0] == FS
    assert placed[1] == BackendSpec(name="git", url="http://mcp-sandbox:8081/git/mcp")
    assert placed[1].command is None
    assert not placed[1].env


@pytest.mark.parametrize(
    "url",
    ["https://mcp-sandbox:8081", "http://mcp-sandbox:8081/x", "mcp-sandbox:8081", "http://a b"],
)
def test_a_sandbox_that_is_not_a_plain_http_origin_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="sandbox URL"):
        place((GIT,), url)


@pytest.mark.parametrize(
    "body",
    [
        {"url": "http://x/mcp", "sandbox": True},  # nothing to run in the sandbox
        {"command": "x", "egress": True, "sandbox": True},  # the sandbox has no network
        {"command": "x", "sandbox": "yes"},
    ],
)
def test_a_sandbox_entry_that_cannot_work_is_refused_at_load(body: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        parse_backends({"mcpServers": {"git": body}}, "servers.yaml", {})


def test_the_default_policy_sandboxes_git() -> None:
    doc = yaml.safe_load((Path(__file__).parents[3] / "policy" / "servers.yaml").read_text())
    specs = parse_backends(doc, "servers.yaml", {"workspace": "/w"})
    assert [s.name for s in specs if s.sandbox] == ["git"]


POLICY = """\
version: 1
protected: {paths: ["${state_dir}"], names: [".env"]}
lists: {}
servers:
  git:
    tools:
      git_status: {repo_path: read-path}
rules:
  - name: git-status
    effect: allow
    reason: reading the repository's state is harmless
    server: git
    tools: [git_status]
"""


def test_the_proxy_reaches_a_sandboxed_git_through_the_sandbox(tmp_path: Path) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "policy.yaml").write_text(POLICY)
    spec = {"command": str(BIN / "mcp-server-git"), "args": [], "sandbox": True}
    (policy / "servers.yaml").write_text(yaml.safe_dump({"mcpServers": {"git": spec}}))
    workspace = tmp_path / "ws"
    workspace.mkdir()
    subprocess.run(["git", "init", "-q", str(workspace)], check=True)
    (workspace / "new.txt").write_text("untracked\n")
    specs = parse_backends({"mcpServers": {"git": spec}}, "servers.yaml", {})

    async def go() -> tuple[list[str], types.CallToolResult]:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                ports: list[int] = []
                ready = anyio.Event()

                def started(port: int) -> None:
                    ports.append(port)
                    ready.set()

                tg.start_soon(lambda: serve_sandbox(specs, "127.0.0.1", 0, started=started))
                await ready.wait()
                settings = ProxySettings(
                    policy_dir=policy,
                    workspace=workspace,
                    audit_file=tmp_path / "audit" / "a.jsonl",
                    state_dir=tmp_path / "state",
                    sandbox=f"http://127.0.0.1:{ports[0]}",
                )
                async with running_gate(settings) as gate:
                    names = [t.name for t in gate.tools()]
                    result = await gate.call("git__git_status", {"repo_path": str(workspace)})
                tg.cancel_scope.cancel()
        return names, result

    names, result = anyio.run(go)
    assert "git__git_status" in names
    assert not result.is_error
    assert "new.txt" in "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def test_a_saved_listing_lets_the_proxy_start_without_the_sandbox_and_a_call_fails_closed(
    tmp_path: Path,
) -> None:
    """On demand through the sandbox: no connection at start-up; an unreachable sandbox refuses
    the call with the reason instead of hanging or running git anywhere else."""
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "policy.yaml").write_text(POLICY)
    spec = {"command": str(BIN / "mcp-server-git"), "args": [], "sandbox": True}
    (policy / "servers.yaml").write_text(yaml.safe_dump({"mcpServers": {"git": spec}}))
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (command,) = parse_backends({"mcpServers": {"git": spec}}, "servers.yaml", {})
    listing = [types.Tool(name="git_status", input_schema={"type": "object"})]
    assert ToolCache(tmp_path / "tools").put(command, listing) is not None
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    settings = ProxySettings(
        policy_dir=policy,
        workspace=workspace,
        audit_file=tmp_path / "audit" / "a.jsonl",
        state_dir=tmp_path / "state",
        sandbox=f"http://127.0.0.1:{closed.getsockname()[1]}",
        tools_cache=tmp_path / "tools",
        startup_timeout_s=3,
    )

    async def go() -> tuple[list[str], types.CallToolResult]:
        with anyio.fail_after(30):
            async with running_gate(settings) as gate:
                names = [t.name for t in gate.tools()]
                result = await gate.call("git__git_status", {"repo_path": str(workspace)})
        return names, result

    try:
        names, result = anyio.run(go)
    finally:
        closed.close()
    assert names == ["git__git_status"]
    assert result.is_error
    text = "".join(c.text for c in result.content if isinstance(c, types.TextContent))
    assert "backend 'git' did not start: ConnectError" in text
