"""The real proxy process (`ironcurtain mcp-proxy serve`) with the real backends, driven by the
real MCP client over Streamable HTTP: allowed, denied, protected, unknown, malformed, escalated;
then the audit chain is verified, and broken by editing one line."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client

from ironcurtain.audit import verify_file

from .conftest import make_layout


class Proxy:
    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs
        self.audit = dirs["audit"] / "session.jsonl"
        command = [
            sys.executable, "-m", "ironcurtain.cli", "mcp-proxy", "serve",
            "--policy", str(dirs["policy"]), "--workspace", str(dirs["workspace"]),
            "--audit", str(self.audit), "--state-dir", str(dirs["state"]), "--port", "0",
            "--sandbox", "inline",  # tests: the servers as children, no rooms
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(
            target=lambda: [lines.put(x) for x in self.process.stdout], daemon=True
        )
        self._reader.start()
        try:
            line = lines.get(timeout=60)
        except queue.Empty:
            self.stop()
            pytest.fail("the proxy did not announce its port within 60 s")
        assert line.startswith("mcp-proxy: serving on "), line
        self.url = line.split()[-1]

    def call(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        async def go() -> types.CallToolResult:
            with anyio.fail_after(30):
                async with Client(self.url) as client:
                    return await client.call_tool(name, arguments)

        return anyio.run(go)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=10)
        self.process.stdout.close()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, filesystem_server: str) -> Iterator[Proxy]:
    running = Proxy(make_layout(tmp_path_factory.mktemp("proxy"), filesystem_server))
    yield running
    running.stop()


def text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def test_the_agent_sees_every_backend_tool_as_server__tool(proxy: Proxy) -> None:
    async def go() -> list[types.Tool]:
        with anyio.fail_after(30):
            async with Client(proxy.url) as client:
                return (await client.list_tools()).tools

    tools = {t.name: t for t in anyio.run(go)}
    assert {"filesystem__read_text_file", "git__git_status", "fetch__fetch"} <= set(tools)
    assert tools["filesystem__read_text_file"].input_schema["required"] == ["path"]
    assert tools["fetch__fetch"].description


def test_a_read_inside_the_workspace_is_allowed(proxy: Proxy) -> None:
    result = proxy.call(
        "filesystem__read_text_file", {"path": str(proxy.dirs["workspace"] / "hello.txt")}
    )
    assert not result.is_error, text(result)
    assert "hello from the workspace" in text(result)


def test_a_relative_path_is_read_from_the_workspace(proxy: Proxy) -> None:
    result = proxy.call("filesystem__read_text_file", {"path": "hello.txt"})
    # Allowed by policy; the backend itself resolves relative paths against its own cwd,
    # so either it reads the file or answers with its own error -- never a policy denial.
    assert "IronCurtain policy denied" not in text(result)


def test_git_status_in_the_workspace_is_allowed(proxy: Proxy) -> None:
    result = proxy.call("git__git_status", {"repo_path": str(proxy.dirs["workspace"])})
    assert not result.is_error, text(result)
    assert "hello.txt" in text(result)


@pytest.mark.parametrize(
    ("name", "arguments", "rule"),
    [
        ("filesystem__read_text_file", {"path": "/etc/passwd"}, "outside-workspace"),
        ("filesystem__read_text_file", {"path": "{outside}/secret.txt"}, "outside-workspace"),
        ("filesystem__read_text_file", {"path": "{workspace}/escape.txt"}, "outside-workspace"),
        (
            "filesystem__read_text_file",
            {"path": "{workspace}/../outside/secret.txt"},
            "outside-workspace",
        ),
        ("filesystem__read_text_file", {"path": "{workspace}/.env"}, "protected-path"),
        ("filesystem__write_file", {"path": "{workspace}/.env", "content": "x"}, "protected-path"),
        ("filesystem__read_text_file", {"path": "{audit}/session.jsonl"}, "protected-path"),
        ("filesystem__list_directory", {"path": "{state}"}, "protected-path"),
        ("filesystem__read_text_file", {"path": 42}, "bad-arguments"),
        ("filesystem__read_text_file", {}, "bad-arguments"),
        ("filesystem__read_text_file", {"path": "hello.txt", "sneaky": 1}, "bad-arguments"),
        ("filesystem__delete_everything", {}, "unknown-tool"),
        ("shell__run", {"cmd": "id"}, "unknown-tool"),
        ("read_text_file", {"path": "x"}, "unknown-tool"),
    ],
)
def test_forbidden_calls_get_an_error_naming_the_rule(
    proxy: Proxy, name: str, arguments: dict[str, Any], rule: str
) -> None:
    dirs = {k: str(v) for k, v in proxy.dirs.items()}
    arguments = {k: v.format(**dirs) if isinstance(v, str) else v for k, v in arguments.items()}
    result = proxy.call(name, arguments)
    assert result.is_error
    assert f"rule '{rule}'" in text(result), text(result)
    assert "outside the workspace\n" not in text(result)  # the secret's content never leaks


def test_an_escalation_without_a_channel_is_denied_saying_so(proxy: Proxy) -> None:
    ws = proxy.dirs["workspace"]
    (ws / "old.txt").write_text("keep me")
    result = proxy.call(
        "filesystem__move_file", {"source": str(ws / "old.txt"), "destination": str(ws / "new.txt")}
    )
    assert result.is_error
    assert "workspace-delete-escalates" in text(result)
    assert "no escalation channel is configured" in text(result)
    assert (ws / "old.txt").exists()
    assert not (ws / "new.txt").exists()


def test_the_audit_log_records_every_decision_before_its_outcome(proxy: Proxy) -> None:
    proxy.call("filesystem__read_text_file", {"path": str(proxy.dirs["workspace"] / "hello.txt")})
    proxy.call("filesystem__read_text_file", {"path": "/etc/passwd"})
    records = [json.loads(line) for line in proxy.audit.read_text().splitlines()]
    decisions = {r["call"]: r for r in records if r.get("event") == "decision"}
    outcomes = [r for r in records if r.get("event") == "outcome"]
    assert outcomes
    for outcome in outcomes:
        decision = decisions[outcome["call"]]
        assert decision["seq"] < outcome["seq"]
        assert decision["effect"] == "allow"
        assert outcome["result_bytes"] > 0
        assert outcome["duration_ms"] >= 0
    denied = [r for r in decisions.values() if r["arguments"].get("path") == "/etc/passwd"]
    assert denied
    assert denied[-1]["rule"] == "outside-workspace"
    assert not any(r["call"] == denied[-1]["call"] for r in outcomes)  # nothing was forwarded


def test_the_audit_chain_verifies_and_editing_one_line_breaks_it(proxy: Proxy) -> None:
    proxy.call("git__git_status", {"repo_path": str(proxy.dirs["workspace"])})
    report = verify_file(proxy.audit)
    assert report.ok, report.problem
    assert report.lines >= 3
    copy = proxy.audit.with_name("copy.jsonl")
    lines = proxy.audit.read_bytes().splitlines(keepends=True)
    record = json.loads(lines[1])
    record["effect"] = "allow" if record.get("effect") != "allow" else "deny"
    lines[1] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    copy.write_bytes(b"".join(lines))
    os.link(proxy.audit.with_name("session.jsonl.head"), copy.with_name("copy.jsonl.head"))
    broken = verify_file(copy)
    assert not broken.ok
    assert "line 3" in broken.problem
