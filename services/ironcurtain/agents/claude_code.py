"""Claude Code (`@anthropic-ai/claude-code`) as an IronCurtain agent."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .adapter import (
    SESSION_MOUNT,
    WORKSPACE,
    Endpoints,
    OrientationFile,
    guide,
    json_event,
    proxy_environment,
)

MCP_SERVER_NAME = "ironcurtain"
FAKE_KEY_ENV = "IRONCURTAIN_ANTHROPIC_FAKE_KEY"  # read by the image's apiKeyHelper
API_KEY_HELPER = "/usr/local/bin/ironcurtain-api-key"
MCP_CONFIG = f"{SESSION_MOUNT}/mcp.json"


@dataclass(frozen=True, slots=True)
class ClaudeCode:
    name: str = "claude-code"
    image: str = "agent-claude-code"
    providers: tuple[str, ...] = ("anthropic",)
    # A Claude subscription: the agent signs in with a fake OAuth token in its own credentials
    # file (session/subscription.py writes it), not with an API key from the apiKeyHelper.
    subscription: bool = False

    def environment(self, endpoints: Endpoints, fake_keys: Mapping[str, str]) -> dict[str, str]:
        key = {} if self.subscription else {FAKE_KEY_ENV: fake_keys["anthropic"]}
        return {
            **proxy_environment(endpoints),
            "NODE_EXTRA_CA_CERTS": endpoints.ca_cert,
            **key,
            # Telemetry, error reporting and auto-update would only hit the allowlist.
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            # List MCP tools directly instead of deferring them behind ToolSearch.
            "ENABLE_TOOL_SEARCH": "false",
        }

    def _common_args(self) -> list[str]:
        # Our MCP server's tools run without Claude Code's own prompt or "auto mode" classifier:
        # every call is decided by the policy proxy (allow / deny / escalate to a human).
        return [
            "--mcp-config",
            MCP_CONFIG,
            "--strict-mcp-config",
            "--allowedTools",
            f"mcp__{MCP_SERVER_NAME}",
        ]

    def oneshot_command(self, task: str) -> list[str]:
        return [
            "claude",
            "-p",
            task,
            "--output-format",
            "stream-json",
            "--verbose",
            *self._common_args(),
        ]

    def interactive_command(self) -> list[str]:
        return ["claude", *self._common_args()]

    def orientation_files(self, endpoints: Endpoints) -> list[OrientationFile]:
        mcp = {"mcpServers": {MCP_SERVER_NAME: {"type": "http", "url": endpoints.mcp_url}}}
        # Onboarding done and the workspace trusted: an interactive session starts at the prompt,
        # not at a theme picker or the "do you trust this folder?" dialog (which blocks input).
        state = {
            "hasCompletedOnboarding": True,
            "autoUpdates": False,
            "projects": {WORKSPACE: {"hasTrustDialogAccepted": True}},
        }
        files = [
            OrientationFile("mcp.json", json.dumps(mcp, indent=2) + "\n"),
            OrientationFile(".claude/CLAUDE.md", guide()),
            OrientationFile(".claude.json", json.dumps(state) + "\n"),
        ]
        if not self.subscription:
            # An apiKeyHelper outranks an OAuth login, so it is set per session, API keys only.
            helper = {"apiKeyHelper": API_KEY_HELPER}
            files.append(OrientationFile(".claude/settings.json", json.dumps(helper) + "\n"))
        return files

    def render(self, line: str) -> str | None:
        event = json_event(line)
        if event is None:
            return line.rstrip("\n") or None
        kind = event.get("type")
        if kind == "system" and event.get("subtype") == "init":
            return f"[agent] started (model {event.get('model', '?')}{_mcp_status(event)})"
        if kind == "assistant":
            return _render_content(event.get("message", {}).get("content", []), "assistant")
        if kind == "user":
            return _render_content(event.get("message", {}).get("content", []), "user")
        if kind == "result":
            return "\n".join([*_refusals(event), f"[answer] {event.get('result', '')}"])
        return None

    def final_answer(self, lines: Iterable[str]) -> str | None:
        answer = None
        for line in lines:
            event = json_event(line)
            if event is not None and event.get("type") == "result":
                answer = event.get("result")
        return answer


def _mcp_status(init: dict[str, Any]) -> str:
    """Our MCP server's state as Claude Code saw it at start ("connected", "needs-auth", ...)."""
    servers = init.get("mcp_servers")
    for server in servers if isinstance(servers, list) else []:
        if isinstance(server, dict) and server.get("name") == MCP_SERVER_NAME:
            return f", MCP server {MCP_SERVER_NAME}: {server.get('status', '?')}"
    return f", MCP server {MCP_SERVER_NAME}: missing" if isinstance(servers, list) else ""


def _refusals(result: dict[str, Any]) -> list[str]:
    """Calls Claude Code refused on its own (not in --allowedTools): they never reached a door."""
    denials = result.get("permission_denials")
    names = (
        [str(d.get("tool_name", "?")) for d in denials if isinstance(d, dict)]
        if isinstance(denials, list)
        else []
    )
    return [f"[refused by Claude Code, not by policy] {', '.join(names)}"] if names else []


def _render_content(content: Any, role: str) -> str | None:
    if not isinstance(content, list):
        return None
    shown = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and role == "assistant":
            shown.append(f"[agent] {block.get('text', '')}")
        elif block.get("type") == "tool_use":
            args = json.dumps(block.get("input", {}), sort_keys=True)[:200]
            shown.append(f"[tool] {block.get('name', '?')} {args}")
        elif block.get("type") == "tool_result":
            status = "error" if block.get("is_error") else "ok"
            shown.append(f"[tool result: {status}] {_text_of(block.get('content'))[:200]}")
    return "\n".join(shown) or None


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return ""
