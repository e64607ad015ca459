"""The real proxy process (`ironcurtain mcp-proxy serve`) with the real backends, driven by the
real MCP client over Streamable HTTP: allowed, denied, protected, unknown, malformed, escalated;
then the audit chain is verified, and broken by editing one line."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from ironcurtain.audit import read_key, verify_file, write_key
from ironcurtain.mcpproxy.jsonrpc import parse_json

from .conftest import make_layout


class Proxy:
    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs
        self.audit = dirs["audit"] / "session.jsonl"
        self.key_file = dirs["audit"].parent / "audit.key"
        write_key(self.key_file, bytes(range(32)))
        command = [
            sys.executable, "-m", "ironcurtain.cli", "mcp-proxy", "serve",
            "--policy", str(dirs["policy"]), "--workspace", str(dirs["workspace"]),
            "--audit", str(self.audit), "--state-dir", str(dirs["state"]), "--port", "0",
            "--audit-key-file", str(self.key_file),
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


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("filesystem__delete_everything", {}),
        ("shell__run", {"cmd": "id"}),
        ("read_text_file", {"path": "x"}),
    ],
)
def test_an_unknown_tool_is_the_json_rpc_error_the_spec_names_and_is_audited(
    proxy: Proxy, name: str, arguments: dict[str, Any]
) -> None:
    with pytest.raises(BaseException) as caught:  # noqa: PT011 - unwrapped below
        proxy.call(name, arguments)
    error = caught.value
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    assert isinstance(error, MCPError), repr(error)
    assert error.code == -32602
    assert error.message == f"Unknown tool: {name}"
    records = [json.loads(line) for line in proxy.audit.read_text().splitlines()]
    (decision,) = [r for r in records if r.get("event") == "decision" and r["tool"] == name][-1:]
    assert (decision["effect"], decision["rule"]) == ("deny", "unknown-tool")
    assert not any(r.get("call") == decision["call"] for r in records if r["event"] == "outcome")


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
    key = read_key(proxy.key_file)
    report = verify_file(proxy.audit, key)
    assert report.ok, report.problem
    assert report.lines >= 3
    copy = proxy.audit.with_name("copy.jsonl")
    lines = proxy.audit.read_bytes().splitlines(keepends=True)
    record = json.loads(lines[1])
    record["effect"] = "allow" if record.get("effect") != "allow" else "deny"
    lines[1] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    copy.write_bytes(b"".join(lines))
    os.link(proxy.audit.with_name("session.jsonl.head"), copy.with_name("copy.jsonl.head"))
    broken = verify_file(copy, key)
    assert not broken.ok
    assert "line 3" in broken.problem


def _post(
    url: str, body: bytes, headers: list[tuple[str, str]]
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP/1.1 POST (headers exactly as given, duplicates included)."""
    parts = urlsplit(url)
    head = [f"POST {parts.path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers)]
    head += [f"Content-Length: {len(body)}", "Connection: close"]
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall("\r\n".join(head).encode() + b"\r\n\r\n" + body)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    raw_headers, _, payload = rest.partition(b"\r\n\r\n")
    fields = dict(line.decode().lower().split(": ", 1) for line in raw_headers.split(b"\r\n"))
    return int(status_line.split()[1]), fields, payload


ODD_BODIES = {
    "NaN": b'{"path":NaN}',
    "a lone surrogate": b'{"path":"\\ud800","content":"x"}',
    "nesting 960 deep": b'{"path":' + b"[" * 960 + b"]" * 960 + b"}",
    "a duplicate key": b'{"path":"hello.txt","path":"/etc/passwd"}',
}


def test_odd_json_and_duplicate_hosts_are_refused_end_to_end_and_audited(proxy: Proxy) -> None:
    base = [("Host", "127.0.0.1"), ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream")]  # fmt: skip
    hello = {"protocolVersion": "2025-06-18", "capabilities": {},
             "clientInfo": {"name": "raw", "version": "0"}}  # fmt: skip
    init = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": hello})
    status, fields, _ = _post(proxy.url, init.encode(), base)
    assert status == 200
    session = [*base, ("Mcp-Session-Id", fields["mcp-session-id"])]
    before = len(proxy.audit.read_text().splitlines())
    listed = sorted(os.listdir(os.fsencode(proxy.dirs["workspace"])))
    for name, arguments in ODD_BODIES.items():
        body = (
            b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":'
            b'{"name":"filesystem__write_file","arguments":' + arguments + b"}}"
        )
        status, _, payload = _post(proxy.url, body, session)
        assert status == 400, (name, payload)
        assert json.loads(payload)["error"]["code"] == -32700, name
    twice = [("Host", "evil.example"), *session]  # the last Host used to win
    status, _, _ = _post(proxy.url, b'{"jsonrpc":"2.0","id":2,"method":"ping"}', twice)
    assert status == 400
    # The control: the same session, one Host, a well-formed call, is served.
    ok = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "ping"}).encode()
    assert _post(proxy.url, ok, session)[0] == 200

    lines = proxy.audit.read_text().splitlines()[before:]
    # Every line is strict JSON: no bare NaN reached the audit (or anything after it).
    records = [parse_json(line.encode()) for line in lines]
    refused = [r for r in records if r["event"] == "decision"]
    assert [(r["effect"], r["rule"]) for r in refused] == [("deny", "malformed-request")] * 5
    assert not any(r["event"] == "outcome" for r in records)
    assert verify_file(proxy.audit, read_key(proxy.key_file)).ok
    assert sorted(os.listdir(os.fsencode(proxy.dirs["workspace"]))) == listed  # nothing written
