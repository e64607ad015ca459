"""The OpenAI Codex CLI (`@openai/codex`) as an IronCurtain agent."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .adapter import Endpoints, OrientationFile, guide, json_event, proxy_environment

MCP_SERVER_NAME = "ironcurtain"
PROVIDER_ID = "ironcurtain-openai"
KEY_ENV = "OPENAI_API_KEY"

MODEL = "gpt-5.2"
# Codex's own sandbox is off: the container is the sandbox, and every effect beyond the
# workspace goes through our doors. Approvals are ours (escalations), not Codex's.
# Tools are direct: in code mode (the default of Codex 0.171's own default model) every tool,
# MCP ones included, is reached only from inside JavaScript run by Codex's `exec` tool, so the
# vendor would see no MCP tool at all. No update check, analytics or feedback: their hosts are
# no door of ours (the MITM refuses them anyway).
CONFIG = """\
model_provider = "{provider}"
model = "{model}"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false

[features]
code_mode = false
code_mode_only = false

[analytics]
enabled = false

[feedback]
enabled = false

[model_providers.{provider}]
name = "OpenAI through IronCurtain"
base_url = "https://api.openai.com/v1"
env_key = "{key_env}"
wire_api = "responses"

[mcp_servers.{server}]
url = {url}
"""


@dataclass(frozen=True, slots=True)
class Codex:
    name: str = "codex"
    image: str = "agent-codex"
    providers: tuple[str, ...] = ("openai",)

    def environment(self, endpoints: Endpoints, fake_keys: Mapping[str, str]) -> dict[str, str]:
        return {
            **proxy_environment(endpoints),
            "CODEX_CA_CERTIFICATE": endpoints.ca_cert,
            KEY_ENV: fake_keys["openai"],
        }

    def oneshot_command(self, task: str) -> list[str]:
        return ["codex", "exec", "--json", "--skip-git-repo-check", task]

    def interactive_command(self) -> list[str]:
        return ["codex"]

    def orientation_files(self, endpoints: Endpoints) -> list[OrientationFile]:
        config = CONFIG.format(
            provider=PROVIDER_ID,
            model=MODEL,
            key_env=KEY_ENV,
            server=MCP_SERVER_NAME,
            url=json.dumps(endpoints.mcp_url),  # a TOML basic string is a JSON string
        )
        return [
            OrientationFile(".codex/config.toml", config),
            OrientationFile(".codex/AGENTS.md", guide()),
        ]

    def render(self, line: str) -> str | None:
        event = json_event(line)
        if event is None:
            return line.rstrip("\n") or None
        item = event.get("item")
        if not isinstance(item, dict):
            return None
        kind = item.get("type")
        if event.get("type") == "item.started" and kind == "mcp_tool_call":
            args = json.dumps(item.get("arguments", {}), sort_keys=True)[:200]
            return f"[tool] {item.get('server', '?')}/{item.get('tool', '?')} {args}"
        if event.get("type") != "item.completed":
            return None
        if kind == "agent_message":
            return f"[agent] {item.get('text', '')}"
        if kind == "mcp_tool_call":
            return f"[tool result: {item.get('status', '?')}] {item.get('tool', '?')}"
        if kind == "command_execution":
            return f"[shell] {item.get('command', '')} -> {item.get('exit_code', '?')}"
        return None

    def final_answer(self, lines: Iterable[str]) -> str | None:
        answer = None
        for line in lines:
            event = json_event(line)
            item = event.get("item") if event else None
            if (
                event is not None
                and event.get("type") == "item.completed"
                and isinstance(item, dict)
                and item.get("type") == "agent_message"
            ):
                answer = item.get("text")
        return answer
