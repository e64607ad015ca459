"""A small synchronous MCP client over Streamable HTTP (JSON answers), stdlib only.

The builtin agent's code sandbox starts a fresh interpreter per `execute_code`; importing the
`mcp` SDK there costs about a second each time, this module (loaded with a program's first tool
call) tens of milliseconds. It speaks exactly
what the policy proxy serves (mcpproxy/http.py): initialize (a session id), then tools/list and
tools/call in that session. It goes to the door directly, never through a proxy (the MCP door
is the sidecar, the agent's only neighbour).

A tool's error result becomes an exception: `PolicyDenied` (rule and reason, as the gate words a
denial), `NotApproved` (an escalation a human did not approve), or `ToolError` (anything else).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from .builtin_errors import McpError, NotApproved, PolicyDenied, ToolError

__all__ = ["McpClient", "McpError", "NotApproved", "PolicyDenied", "ToolError", "ToolResult"]

PROTOCOL_VERSION = "2025-06-18"
CLIENT_INFO = {"name": "ironcurtain-builtin", "version": "1"}
MAX_ANSWER_BYTES = 16 * 1024 * 1024

# As mcpproxy/gate.py words them (a unit test runs the real gate to keep these in step).
_DENIED = re.compile(
    r"IronCurtain policy denied (?P<tool>\S+) \(rule (?P<q>['\"])(?P<rule>.*?)(?P=q)\): "
    r"(?P<reason>.*)",
    re.DOTALL,
)
_NOT_APPROVED = re.compile(
    r"IronCurtain escalated (?P<tool>\S+) \(rule (?P<q>['\"])(?P<rule>.*?)(?P=q): "
    r"(?P<reason>.*?)\); not approved \((?P<verdict>[a-z_]+)\): (?P<message>.*)",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class ToolResult:
    is_error: bool
    text: str
    structured: Any = None


def result_text(result: dict[str, Any]) -> str:
    parts = [
        str(c.get("text", ""))
        for c in result.get("content") or []
        if isinstance(c, dict) and c.get("type") == "text"
    ]
    return "\n".join(parts)


def raise_for(tool: str, result: ToolResult) -> str:
    """The text of a successful result, or the exception an error result means."""
    if not result.is_error:
        return result.text
    text = result.text
    found = _DENIED.fullmatch(text.strip())
    if found:
        raise PolicyDenied(tool, found["rule"], found["reason"], text)
    found = _NOT_APPROVED.fullmatch(text.strip())
    if found:
        raise NotApproved(tool, found["rule"], found["reason"], found["verdict"], text)
    raise ToolError(tool, text)


class McpClient:
    """One MCP session at `url`, opened on first use."""

    def __init__(self, url: str, timeout_s: float = 3600.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise McpError(f"the MCP door's URL is not HTTP: {url!r}")
        self.url = url
        self.timeout_s = timeout_s  # an escalated call waits for a human: the caller bounds it
        self._session: str | None = None
        self._next_id = 0
        # Direct: no HTTPS_PROXY / http_proxy from the environment for the door.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _post(self, message: dict[str, Any]) -> tuple[int, dict[str, Any] | None, str | None]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self._session is not None:
            headers["mcp-session-id"] = self._session
            headers["mcp-protocol-version"] = PROTOCOL_VERSION
        request = urllib.request.Request(  # noqa: S310 (HTTP only: checked in __init__)
            self.url, data=json.dumps(message).encode(), headers=headers, method="POST"
        )
        try:
            with self._opener.open(request, timeout=self.timeout_s) as answer:
                status, session, raw = (
                    answer.status,
                    answer.headers.get("mcp-session-id"),
                    answer.read(MAX_ANSWER_BYTES),
                )
        except urllib.error.HTTPError as exc:
            status, session, raw = exc.code, None, exc.read(MAX_ANSWER_BYTES)
        except OSError as exc:
            raise McpError(f"the MCP door at {self.url} did not answer: {exc}") from None
        if not raw:
            return status, None, session
        try:
            body = json.loads(raw)
        except ValueError:
            raise McpError(f"the MCP door answered {status} with no JSON") from None
        return status, body if isinstance(body, dict) else None, session

    def _request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        if self._session is None:
            self.initialize()
        for attempt in (1, 2):
            self._next_id += 1
            message: dict[str, Any] = {"jsonrpc": "2.0", "id": self._next_id, "method": method}
            if params is not None:
                message["params"] = params
            status, body, _ = self._post(message)
            if status == 404 and attempt == 1:  # the proxy forgot our session: open a new one
                self.initialize()
                continue
            if body is None:
                raise McpError(f"{method}: the MCP door answered {status} with nothing")
            if "error" in body:
                error = body["error"] if isinstance(body["error"], dict) else {}
                raise McpError(f"{method}: {error.get('message', 'error')} ({error.get('code')})")
            result = body.get("result")
            if status != 200 or not isinstance(result, dict):
                raise McpError(f"{method}: the MCP door answered {status}")
            return result
        raise McpError(f"{method}: the MCP door keeps forgetting the session")  # pragma: no cover

    def initialize(self) -> None:
        self._session = None
        hello = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": CLIENT_INFO,
            },
        }
        status, body, session = self._post(hello)
        if status != 200 or session is None or body is None or "result" not in body:
            raise McpError(f"initialize: the MCP door answered {status}")
        self._session = session
        self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def list_tools(self) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            result = self._request("tools/list", {"cursor": cursor} if cursor else None)
            tools += [t for t in result.get("tools") or [] if isinstance(t, dict)]
            cursor = result.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                return tools

    def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        result = self._request("tools/call", {"name": name, "arguments": arguments})
        return ToolResult(
            bool(result.get("isError")), result_text(result), result.get("structuredContent")
        )
