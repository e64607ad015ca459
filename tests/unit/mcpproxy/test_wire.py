"""The proxy's wire format, spoken by hand: plain JSON responses (no SSE framing) for the
handshake-era Streamable HTTP clients (Claude Code's TypeScript SDK opens with `initialize` and
keeps an `Mcp-Session-Id`) and for the 2026 single-request protocol (the Python SDK's client),
including a client that accepts only application/json. Policy still decides every call."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from .conftest import make_layout
from .test_proxy import Proxy

ACCEPT_BOTH = "application/json, text/event-stream"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, filesystem_server: str) -> Iterator[Proxy]:
    running = Proxy(make_layout(tmp_path_factory.mktemp("wire"), filesystem_server))
    yield running
    running.stop()


class Wire:
    """One kept-alive HTTP connection to the proxy, JSON-RPC bodies in and out."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.path = parts.path
        self.conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        self.next_id = 1

    def post(
        self, message: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, http.client.HTTPMessage, Any]:
        body = json.dumps(message)
        self.conn.request("POST", self.path, body, {"Content-Type": "application/json", **headers})
        response = self.conn.getresponse()
        data = response.read()
        decoded = json.loads(data) if data else None
        return response.status, response.headers, decoded

    def request(self, method: str, params: dict[str, Any], headers: dict[str, str]) -> Any:
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        self.next_id += 1
        status, response_headers, decoded = self.post(message, headers)
        assert status == 200, (status, decoded)
        # The JSON response mode: one application/json body, never an event stream.
        assert response_headers["content-type"] == "application/json"
        assert decoded["id"] == message["id"]
        return decoded

    def close(self) -> None:
        self.conn.close()


def text_of(result: dict[str, Any]) -> str:
    return "".join(c.get("text", "") for c in result["content"])


@pytest.mark.parametrize("version", ["2025-03-26", "2025-06-18", "2025-11-25"])
def test_a_handshake_client_gets_plain_json_and_the_policy_decides(
    proxy: Proxy, version: str
) -> None:
    wire = Wire(proxy.url)
    try:
        status, headers, init = wire.post(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": version,
                    "capabilities": {"roots": {}},
                    "clientInfo": {"name": "claude-code", "version": "2.1.331"},
                },
            },
            {"Accept": ACCEPT_BOTH},
        )
        assert status == 200, init
        assert headers["content-type"] == "application/json"
        assert init["result"]["protocolVersion"] == version
        session = headers["mcp-session-id"]
        assert session
        session_headers = {
            "Accept": ACCEPT_BOTH,
            "Mcp-Session-Id": session,
            "MCP-Protocol-Version": version,
        }
        status, _, _ = wire.post(
            {"jsonrpc": "2.0", "method": "notifications/initialized"}, session_headers
        )
        assert status == 202

        listed = wire.request("tools/list", {}, session_headers)["result"]["tools"]
        assert "filesystem__read_text_file" in {t["name"] for t in listed}

        ws = proxy.dirs["workspace"]
        allowed = wire.request(
            "tools/call",
            {"name": "filesystem__read_text_file", "arguments": {"path": str(ws / "hello.txt")}},
            session_headers,
        )["result"]
        assert allowed.get("isError") is not True
        assert "hello from the workspace" in text_of(allowed)

        outside = proxy.dirs["outside"] / "wire-canary.txt"
        outside.write_text("WIRE-CANARY\n")
        denied = wire.request(
            "tools/call",
            {"name": "filesystem__read_text_file", "arguments": {"path": str(outside)}},
            session_headers,
        )["result"]
        assert denied["isError"] is True
        assert "IronCurtain policy denied" in text_of(denied)
        assert "WIRE-CANARY" not in text_of(denied)
    finally:
        wire.close()


@pytest.mark.parametrize("accept", [ACCEPT_BOTH, "application/json"])
def test_a_single_request_client_gets_plain_json_and_the_policy_decides(
    proxy: Proxy, accept: str
) -> None:
    version = "2026-07-28"
    wire = Wire(proxy.url)
    meta = {
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientInfo": {"name": "wire-test", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    ws = proxy.dirs["workspace"]
    try:
        cases = [
            (str(ws / "hello.txt"), False, "hello from the workspace"),
            (str(ws / ".env"), True, "protected"),
        ]
        for path, is_error, expected in cases:
            name = "filesystem__read_text_file"
            headers = {
                "Accept": accept,
                "MCP-Protocol-Version": version,
                "Mcp-Method": "tools/call",
                "Mcp-Name": name,
            }
            params = {"name": name, "arguments": {"path": path}, "_meta": meta}
            result = wire.request("tools/call", params, headers)["result"]
            assert bool(result.get("isError")) is is_error, result
            assert expected in text_of(result)
            assert "sk-ant-real" not in json.dumps(result)
    finally:
        wire.close()


def test_the_audit_log_holds_every_wire_call(proxy: Proxy) -> None:
    lines = [json.loads(x) for x in Path(proxy.audit).read_text().splitlines()]
    decisions = [x for x in lines if x.get("event") == "decision"]
    assert decisions, "no decision was audited"
    assert {"allow", "deny"} <= {x["effect"] for x in decisions}
