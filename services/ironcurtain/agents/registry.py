"""The agents IronCurtain knows, by name."""

from __future__ import annotations

from .adapter import AgentAdapter
from .builtin import Builtin
from .claude_code import ClaudeCode
from .codex import Codex
from .scripted import Scripted

ADAPTERS: dict[str, AgentAdapter] = {
    adapter.name: adapter for adapter in (Builtin(), ClaudeCode(), Codex(), Scripted())
}


def adapter_for(name: str) -> AgentAdapter:
    try:
        return ADAPTERS[name]
    except KeyError:
        known = ", ".join(sorted(ADAPTERS))
        raise ValueError(f"unknown agent {name!r}; known agents: {known}") from None
