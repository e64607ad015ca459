"""The scripted test agent: a fixed, deterministic script instead of an LLM-driven coding agent.

It exercises every door the way a real agent would (one LLM call through the MITM proxy, MCP calls
through the policy proxy) and prints one JSON line per step, so a session can be tested end to
end without a vendor. The script itself is `ironcurtain.agents.scripted_agent` (in the
`agent-scripted` image, which carries our package and the mcp client).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .adapter import Endpoints, OrientationFile, guide, json_event, proxy_environment

FAKE_KEY_ENV = "IRONCURTAIN_ANTHROPIC_FAKE_KEY"


@dataclass(frozen=True, slots=True)
class Scripted:
    name: str = "scripted"
    image: str = "agent-scripted"
    providers: tuple[str, ...] = ("anthropic",)

    def environment(self, endpoints: Endpoints, fake_keys: Mapping[str, str]) -> dict[str, str]:
        return {
            **proxy_environment(endpoints),
            "IRONCURTAIN_CA_CERT": endpoints.ca_cert,
            "IRONCURTAIN_MCP_URL": endpoints.mcp_url,
            FAKE_KEY_ENV: fake_keys["anthropic"],
        }

    def oneshot_command(self, task: str) -> list[str]:
        return ["python3", "-m", "ironcurtain.agents.scripted_agent", task]

    def interactive_command(self) -> list[str]:
        return ["python3", "-m", "ironcurtain.agents.scripted_agent", "--interactive"]

    def orientation_files(self, endpoints: Endpoints) -> list[OrientationFile]:
        return [OrientationFile("GUIDE.md", guide())]

    def render(self, line: str) -> str | None:
        event = json_event(line)
        if event is None:
            return line.rstrip("\n") or None
        step = event.get("step", "?")
        if step == "llm":
            return f"[llm] {event.get('status')} {event.get('text', '')}"
        if step == "tool":
            state = "error" if event.get("is_error") else "ok"
            return f"[tool] {event.get('tool')} -> {state}: {str(event.get('text', ''))[:200]}"
        if step == "answer":
            return f"[answer] {event.get('text', '')}"
        return f"[agent] {line.strip()}"

    def final_answer(self, lines: Iterable[str]) -> str | None:
        answer = None
        for line in lines:
            event = json_event(line)
            if event is not None and event.get("step") == "answer":
                answer = str(event.get("text", ""))
        return answer
