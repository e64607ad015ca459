"""IronCurtain's own agent (`--agent builtin`, Code Mode): the model writes Python that calls tools.

The agent is ours (builtin_agent.py, in the `agent-builtin` image): an LLM loop over Anthropic's
SDK with a single tool, `execute_code`, whose programs call typed stubs of the MCP tools; each
stub call is an MCP request to the policy proxy through the sidecar. Budgets (builtin_budget)
stop it cleanly; the MITM's budgets stay the outer wall.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from . import builtin_budget
from .adapter import Endpoints, OrientationFile, guide, json_event, proxy_environment
from .builtin_agent import BUDGETS_ENV

FAKE_KEY_ENV = "IRONCURTAIN_ANTHROPIC_FAKE_KEY"
MODULE = "ironcurtain.agents.builtin_agent"
SHOWN = 200  # characters of a program's output in the rendered line


@dataclass(frozen=True, slots=True)
class Builtin:
    name: str = "builtin"
    image: str = "agent-builtin"
    providers: tuple[str, ...] = ("anthropic",)
    budgets: builtin_budget.Budgets = field(default_factory=builtin_budget.Budgets)

    def environment(self, endpoints: Endpoints, fake_keys: Mapping[str, str]) -> dict[str, str]:
        return {
            **proxy_environment(endpoints),
            "IRONCURTAIN_MCP_URL": endpoints.mcp_url,
            FAKE_KEY_ENV: fake_keys["anthropic"],
            BUDGETS_ENV: builtin_budget.to_spec(self.budgets),
        }

    def oneshot_command(self, task: str) -> list[str]:
        return ["python3", "-m", MODULE, task]

    def interactive_command(self) -> list[str]:
        return ["python3", "-m", MODULE, "--interactive"]

    def orientation_files(self, endpoints: Endpoints) -> list[OrientationFile]:
        return [OrientationFile("GUIDE.md", guide())]

    def render(self, line: str) -> str | None:
        event = json_event(line)
        if event is None:
            return line.rstrip("\n") or None
        step = event.get("step")
        if step == "start":
            return (
                f"[agent] builtin: {event.get('tools')} tools, model {event.get('model')}, "
                f"budgets {event.get('budgets')}"
            )
        if step == "llm":
            said = str(event.get("text") or "").strip()
            return (
                f"[llm] step {event.get('n')}: {event.get('stop_reason')} (tokens in "
                f"{event.get('input_tokens')}, out {event.get('output_tokens')})"
                + (f" {said[:SHOWN]}" if said else "")
            )
        if step == "code":
            if event.get("refused"):
                return f"[code] refused {event.get('tool')}: {event.get('refused')}"
            lines = str(event.get("code") or "").strip().splitlines()
            more = f" (+{len(lines) - 3} lines)" if len(lines) > 3 else ""
            return "[code] " + " | ".join(lines[:3]) + more
        if step == "result":
            head = (
                f"stopped ({event.get('stopped')})"
                if event.get("stopped")
                else f"exit {event.get('exit_code')}"
            )
            out = " ".join(str(event.get("stdout") or "").split())[:SHOWN]
            err = " ".join(str(event.get("stderr") or "").split())[:SHOWN]
            return f"[result] {head}" + (f": {out}" if out else "") + (f" ! {err}" if err else "")
        if step == "answer":
            return f"[answer] {event.get('text', '')}"
        if step == "budget":
            return f"[budget] {event.get('budget')}: {event.get('text')}"
        if step == "error":
            return f"[error] {event.get('text')}"
        if step == "compact":
            return f"[compact] {event.get('before')} messages -> {event.get('after')}"
        return f"[agent] {line.strip()}"

    def final_answer(self, lines: Iterable[str]) -> str | None:
        answer = None
        for line in lines:
            event = json_event(line)
            if event is None:
                continue
            if event.get("step") == "answer":
                answer = str(event.get("text", ""))
            elif event.get("step") in ("budget", "error"):
                answer = f"stopped: {event.get('text', '')}"
        return answer

    def failure(self, lines: Iterable[str]) -> str | None:
        """Why the agent failed, for the session's outcome (which budget ended it)."""
        reason = None
        for line in lines:
            event = json_event(line)
            if event is not None and event.get("step") in ("budget", "error"):
                reason = str(event.get("text", ""))
        return reason
