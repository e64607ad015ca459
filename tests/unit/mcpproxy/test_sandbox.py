"""Servers marked `sandbox: true` run only in the sandbox (or inline when asked), never by default
beside the proxy; the sandbox gives each connection a fresh child, spoken to over TCP."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import anyio
import anyio.abc
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
from ironcurtain.mcpproxy.sandbox import child_environment, serve_sandbox

from .conftest import BIN

GIT = BackendSpec(name="git", command="mcp-server-git", sandbox=True)
FS = BackendSpec(name="filesystem", command="mcp-server-filesystem", args=("/w",))


@contextlib.asynccontextmanager
async def serving(specs: Sequence[BackendSpec]) -> AsyncIterator[dict[str, int]]:
    """A sandbox on free loopback ports for the block: server name -> port."""
    async with anyio.create_task_group() as tg:
        ports: dict[str, int] = {}
        ready = anyio.Event()

        def started(bound: dict[str, int]) -> None:
            ports.update(bound)
            ready.set()

        tg.start_soon(lambda: serve_sandbox(specs, "127.0.0.1", 0, started=started))
        await ready.wait()
        yield ports
        tg.cancel_scope.cancel()


def test_inline_keeps_every_server_a_child_of_the_proxy() -> None:
    assert place((FS, GIT), INLINE) == (FS, GIT)


def test_no_sandbox_refuses_a_sandboxed_server_and_names_it() -> None:
    with pytest.raises(ConfigError, match=r"git.*sandbox"):
        place((FS, GIT), "")


def test_no_sandbox_is_fine_when_no_server_asks_for_one() -> None:
    assert place((FS,), "") == (FS,)


def test_a_sandbox_address_turns_only_the_sandboxed_servers_into_pipes() -> None:
    other = BackendSpec(name="other", command="x", sandbox=True)
    placed = place((FS, GIT, other), "mcp-sandbox:8081")
    assert placed[0] == FS
    assert placed[1] == BackendSpec(name="git", address=("mcp-sandbox", 8081))
    assert placed[2] == BackendSpec(name="other", address=("mcp-sandbox", 8082))
    assert placed[1].command is None
    assert not placed[1].env


@pytest.mark.parametrize(
    "sandbox",
    ["http://mcp-sandbox:8081", "mcp-sandbox", "mcp-sandbox:0", "mcp-sandbox:70000", "a b:1"],
)
def test_a_sandbox_that_is_not_host_and_port_is_refused(sandbox: str) -> None:
    with pytest.raises(ConfigError, match="HOST:PORT"):
        place((GIT,), sandbox)


def test_a_sandboxed_child_inherits_only_ordinary_variables_and_its_own() -> None:
    spec = BackendSpec(name="git", command="git", env={"GIT_CONFIG_COUNT": "0"}, sandbox=True)
    environ = {"PATH": "/bin", "HOME": "/tmp", "REDIS_PASSWORD": "x", "AWS_SECRET": "y"}
    assert child_environment(spec, environ) == {
        "PATH": "/bin",
        "HOME": "/tmp",
        "GIT_CONFIG_COUNT": "0",
    }


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
            async with serving(specs) as ports:
                settings = ProxySettings(
                    policy_dir=policy,
                    workspace=workspace,
                    audit_file=tmp_path / "audit" / "a.jsonl",
                    state_dir=tmp_path / "state",
                    sandbox=f"127.0.0.1:{ports['git']}",
                )
                async with running_gate(settings) as gate:
                    names = [t["name"] for t in gate.tools()]
                    result = await gate.call("git__git_status", {"repo_path": str(workspace)})
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
    listing = [{"name": "git_status", "inputSchema": {"type": "object"}}]
    assert ToolCache(tmp_path / "tools").put(command, listing) is not None
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    settings = ProxySettings(
        policy_dir=policy,
        workspace=workspace,
        audit_file=tmp_path / "audit" / "a.jsonl",
        state_dir=tmp_path / "state",
        sandbox=f"127.0.0.1:{closed.getsockname()[1]}",
        tools_cache=tmp_path / "tools",
        startup_timeout_s=3,
    )

    async def go() -> tuple[list[str], types.CallToolResult]:
        with anyio.fail_after(30):
            async with running_gate(settings) as gate:
                names = [t["name"] for t in gate.tools()]
                result = await gate.call("git__git_status", {"repo_path": str(workspace)})
        return names, result

    try:
        names, result = anyio.run(go)
    finally:
        closed.close()
    assert names == ["git__git_status"]
    assert result.is_error
    text = "".join(c.text for c in result.content if isinstance(c, types.TextContent))
    assert "backend 'git' did not start: ConnectionError: the sandbox at 127.0.0.1:" in text


ECHO_CHILD = [
    "-c",
    "import os, sys\n"
    "print(os.getpid(), flush=True)\n"
    "for line in sys.stdin:\n"
    "    if line.strip() == 'exit':\n"
    "        break\n"
    "    print(line.strip().upper(), flush=True)\n",
]


def _pipes(body: Callable[[int], Awaitable[None]]) -> None:
    """Run `body(port)` against a sandbox serving one echoing child per connection."""
    spec = BackendSpec(name="echo", command=sys.executable, args=tuple(ECHO_CHILD), sandbox=True)

    async def go() -> None:
        with anyio.fail_after(30):
            async with serving([spec]) as ports:
                await body(ports["echo"])

    anyio.run(go)


async def _line(stream: anyio.abc.SocketStream) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        data += await stream.receive()
    return data


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_each_connection_gets_its_own_child_and_hanging_up_stops_it() -> None:
    async def body(port: int) -> None:
        first = await anyio.connect_tcp("127.0.0.1", port)
        second = await anyio.connect_tcp("127.0.0.1", port)
        pids = [int(await _line(first)), int(await _line(second))]
        assert pids[0] != pids[1]
        await first.send(b"hello\n")
        assert await _line(first) == b"HELLO\n"
        await first.aclose()
        with anyio.fail_after(10):
            while _alive(pids[0]):  # no event for a stranger's exit: polled, under the deadline
                await anyio.sleep(0.02)
        assert _alive(pids[1])  # the other connection's child is untouched
        await second.aclose()

    _pipes(body)


def test_a_child_that_exits_closes_its_connection() -> None:
    async def body(port: int) -> None:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        await _line(stream)
        await stream.send(b"exit\n")
        with anyio.fail_after(10), pytest.raises(anyio.EndOfStream):
            await stream.receive()
        await stream.aclose()

    _pipes(body)
