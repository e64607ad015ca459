"""Cancellation: the client's `notifications/cancelled` for a call in flight cancels it in the
proxy, reaches the backend (the reference backend's tool sees its own cancellation), and the
call's outcome line says `cancelled`; a cancel naming no call in flight changes nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import yaml

from ironcurtain.mcpproxy.http import REQUEST_CANCELLED, McpHttp
from ironcurtain.mcpproxy.protocol import ServerInfo
from ironcurtain.mcpproxy.service import ProxySettings, running_gate

POLICY = """\
version: 1
protected: {paths: ["${state_dir}"], names: [".env"]}
lists: {}
servers:
  ref:
    tools:
      test_wait_for_cancel: {marker: none}
      test_simple_text: {}
rules:
  - name: reference
    effect: allow
    reason: harmless
    server: ref
"""
HEADERS = [("host", "proxy"), ("content-type", "application/json"), ("accept", "application/json")]


def body(method: str, params: dict[str, Any], id: int | None = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if id is not None:
        message["id"] = id
    return json.dumps(message).encode()


async def until(path: Path) -> None:
    while not path.exists():  # the backend's own sign, waited for under the caller's deadline
        await anyio.sleep(0.01)


def test_a_cancelled_call_is_cancelled_at_the_backend_and_audited(tmp_path: Path) -> None:
    folder = tmp_path / "policy"
    folder.mkdir()
    (folder / "policy.yaml").write_text(POLICY)
    backend = {"command": sys.executable, "args": ["-m", "ironcurtain.fakemcp"]}
    (folder / "servers.yaml").write_text(yaml.safe_dump({"mcpServers": {"ref": backend}}))
    (tmp_path / "ws").mkdir()
    audit = tmp_path / "audit.jsonl"
    settings = ProxySettings(
        policy_dir=folder, workspace=tmp_path / "ws", audit_file=audit, state_dir=tmp_path / "s"
    )
    marker = tmp_path / "call"
    replies: dict[str, Any] = {}

    async def go() -> None:
        with anyio.fail_after(60):
            async with running_gate(settings) as gate:
                app = McpHttp(gate, ServerInfo("p", "1", ""))
                init = {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"},
                }
                opened = await app.respond("POST", "/mcp", HEADERS, body("initialize", init, 1))
                session = dict(opened.headers)[b"mcp-session-id"].decode()
                headers = [*HEADERS, ("mcp-session-id", session)]
                other = await app.respond("POST", "/mcp", HEADERS, body("initialize", init, 1))
                stranger = [
                    *HEADERS,
                    ("mcp-session-id", dict(other.headers)[b"mcp-session-id"].decode()),
                ]

                async def call(id: int, name: str, args: dict[str, Any]) -> None:
                    params = {"name": name, "arguments": args}
                    reply = await app.respond(
                        "POST", "/mcp", headers, body("tools/call", params, id)
                    )
                    replies[name] = json.loads(reply.body)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(call, 7, "ref__test_wait_for_cancel", {"marker": str(marker)})
                    await until(marker.with_suffix(".started"))
                    # Cancels of other ids, and of the right id in another session: nothing.
                    for params in ({"requestId": 8}, {"requestId": "7"}, {"requestId": True}):
                        await app.respond(
                            "POST", "/mcp", headers, body("notifications/cancelled", params)
                        )
                    cancel = body("notifications/cancelled", {"requestId": 7, "reason": "user"})
                    await app.respond("POST", "/mcp", stranger, cancel)  # another session's
                    await call(9, "ref__test_simple_text", {})  # the control, served meanwhile
                    assert "ref__test_wait_for_cancel" not in replies
                    await app.respond("POST", "/mcp", headers, cancel)
                await until(marker.with_suffix(".cancelled"))

    anyio.run(go)
    assert replies["ref__test_wait_for_cancel"]["error"]["code"] == REQUEST_CANCELLED
    assert "result" in replies["ref__test_simple_text"]
    lines = [json.loads(x) for x in audit.read_text().splitlines() if x.strip()]
    outcomes = [x for x in lines if x["event"] == "outcome"]
    assert [(o.get("cancelled", False), o["ok"]) for o in outcomes] == [
        (False, True),
        (True, False),
    ]
    assert outcomes[1]["error"] == "cancelled"
