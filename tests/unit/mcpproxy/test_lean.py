"""The proxy serves without the heavy machinery: in a fresh interpreter, started with saved
listings, it reaches "serving" and answers initialize, tools/list, ping, GET, DELETE and a 406
without importing mcp_types, pydantic or jsonschema; the first tools/call loads them (the control:
the probe sees a lazy import when one happens)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .test_cache import _save

HEAVY = ("mcp_types", "pydantic", "pydantic_core", "jsonschema", "mcp")

SCRIPT = r"""
import http.client, json, sys
from pathlib import Path

import anyio

from ironcurtain.mcpproxy.service import ProxySettings, serve

dirs = json.loads(sys.argv[1])
settings = ProxySettings(
    policy_dir=Path(dirs["policy"]), workspace=Path(dirs["workspace"]),
    audit_file=Path(dirs["audit"]) / "lean.jsonl", state_dir=Path(dirs["state"]),
    tools_cache=Path(dirs["cache"]), port=0,
)
HEAVY = tuple(sys.argv[2].split(","))


def heavy():
    return sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)


def ask(port, method, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    base = {"content-type": "application/json", "accept": "application/json"}
    conn.request(method, "/mcp", json.dumps(body) if body else None, {**base, **(headers or {})})
    reply = conn.getresponse()
    data = reply.read()
    conn.close()
    return reply.status, reply.getheader("mcp-session-id"), data


def requests(port):
    hello = {"protocolVersion": "2025-06-18", "capabilities": {},
             "clientInfo": {"name": "t", "version": "1"}}
    status, session, _ = ask(port, "POST", {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                            "params": hello})
    assert status == 200, status
    s = {"mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
    assert ask(port, "POST", {"jsonrpc": "2.0", "method": "notifications/initialized"}, s)[0] == 202
    status, _, body = ask(port, "POST", {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, s)
    tools = [t["name"] for t in json.loads(body)["result"]["tools"]]
    assert ask(port, "POST", {"jsonrpc": "2.0", "id": 3, "method": "ping"}, s)[0] == 200
    assert ask(port, "GET", None, s)[0] == 405
    assert ask(port, "POST", {"jsonrpc": "2.0", "id": 4, "method": "ping"},
               {**s, "accept": "text/html"})[0] == 406
    other = ask(port, "POST", {"jsonrpc": "2.0", "id": 5, "method": "initialize",
                               "params": hello})[1]
    assert ask(port, "DELETE", None, {"mcp-session-id": other})[0] == 200
    return session, tools


def call(port, session):
    s = {"mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
    params = {"name": "filesystem__read_text_file", "arguments": {"path": "/etc/passwd"}}
    return ask(port, "POST", {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                              "params": params}, s)[0]


async def main():
    report = {}
    ports = []
    ready = anyio.Event()

    def started(port):
        ports.append(port)
        report["serving"] = heavy()
        ready.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: serve(settings, started=started))
        await ready.wait()
        session, report["tools"] = await anyio.to_thread.run_sync(requests, ports[0])
        report["answered"] = heavy()
        report["call_status"] = await anyio.to_thread.run_sync(call, ports[0], session)
        report["called"] = heavy()
        tg.cancel_scope.cancel()
    print(json.dumps(report))


anyio.run(main)
"""


def test_the_proxy_serves_and_answers_without_mcp_types_pydantic_or_jsonschema(
    layout: dict[str, Path], tmp_path: Path
) -> None:
    _save(layout, tmp_path / "cache", lambda doc: None)
    dirs = {k: str(v) for k, v in layout.items()} | {"cache": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(dirs), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "filesystem__read_text_file" in report["tools"]  # answered from the saved listings
    assert report["serving"] == []
    assert report["answered"] == []
    # The control: the first tools/call (denied: outside the workspace) loads the result models.
    assert report["call_status"] == 200
    assert "mcp_types" in report["called"]
    assert "pydantic" in report["called"]
