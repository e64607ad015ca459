"""A session's summary, counted from its audit logs (the record of what happened). Pure."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ToolCounts:
    total: int = 0
    allowed: int = 0  # by a rule, without asking
    denied: int = 0
    escalated: int = 0
    approved: int = 0  # escalations a human (or a remembered scope) approved
    not_approved: int = 0  # denied, expired or unavailable


@dataclass(frozen=True, slots=True)
class LlmCounts:
    requests: int = 0  # forwarded to the vendor
    refused: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    # "provider:model" priced by the provider's fallback entry ("*"): the cost is a guess
    unpriced: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Summary:
    session: str
    project: str
    agent: str
    task: str
    outcome: str  # "ok" or what ended it
    duration_s: float
    tools: ToolCounts
    llm: LlmCounts
    audit: Mapping[str, str]  # name -> host path
    answer: str | None = None
    runtime: str = ""  # the agent container's OCI runtime (runsc: gVisor), "" if none started
    room_runtime: str = ""  # the MCP servers' rooms'

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def render(self) -> str:
        t, m = self.tools, self.llm
        lines = [
            f"session {self.session} ({self.agent}): {self.outcome} in {self.duration_s:.1f}s",
            f"  tool calls: {t.total} (allowed {t.allowed}, denied {t.denied}, escalated "
            f"{t.escalated}: approved {t.approved}, not approved {t.not_approved})",
            f"  LLM: {m.requests} requests ({m.refused} refused), tokens in {m.input_tokens} "
            f"out {m.output_tokens}, estimated cost ${m.cost_usd:.4f}",
        ]
        if self.runtime:
            lines.append(f"  runtime: agent under {self.runtime}, rooms under {self.room_runtime}")
        if m.unpriced:
            lines.append(
                f"  prices: no price known for {', '.join(m.unpriced)}; estimated with the "
                "provider's fallback price (set yours: [[prices.PROVIDER]] in the user config)"
            )
        lines += [f"  audit ({name}): {path}" for name, path in sorted(self.audit.items())]
        if self.answer:
            lines.append(f"  answer: {self.answer}")
        return "\n".join(lines)


def json_lines(text: str) -> list[dict[str, Any]]:
    """An audit file's entries; lines that are not JSON objects are skipped."""
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def tool_counts(entries: Iterable[Mapping[str, Any]]) -> ToolCounts:
    """From the MCP proxy's audit: `decision` lines by effect, `escalation` lines by verdict."""
    effects = {"allow": 0, "deny": 0, "escalate": 0}
    approved = not_approved = 0
    for entry in entries:
        if entry.get("event") == "decision" and entry.get("effect") in effects:
            effects[str(entry["effect"])] += 1
        elif entry.get("event") == "escalation":
            if entry.get("verdict") == "approved":
                approved += 1
            else:
                not_approved += 1
    return ToolCounts(
        total=sum(effects.values()),
        allowed=effects["allow"],
        denied=effects["deny"],
        escalated=effects["escalate"],
        approved=approved,
        not_approved=not_approved,
    )


def llm_counts(entries: Iterable[Mapping[str, Any]], since: float = 0.0) -> LlmCounts:
    """From the MITM's audit: `allow` requests, refusals, and usage on `response` lines.

    `since` (epoch seconds) leaves out the start-up check's own probe of the door.
    """
    requests = refused = tokens_in = tokens_out = 0
    cost = 0.0
    unpriced: set[str] = set()
    for entry in entries:
        if float(entry.get("time") or 0.0) < since:
            continue
        decision = entry.get("decision")
        if entry.get("event") == "request" and decision == "allow":
            requests += 1
        if decision == "refuse":
            refused += 1
        if entry.get("event") == "refusals":  # refusals the rate limit left unwritten
            refused += int(entry.get("count") or 0)
        if entry.get("event") == "response":
            tokens_in += int(entry.get("input_tokens") or 0)
            tokens_out += int(entry.get("output_tokens") or 0)
            cost += float(entry.get("cost_usd") or 0.0)
            spent = entry.get("input_tokens") or entry.get("output_tokens")
            if entry.get("priced_as") == "*" and spent:
                unpriced.add(f"{entry.get('provider', '')}:{entry.get('model') or '(unnamed)'}")
    return LlmCounts(
        requests, refused, tokens_in, tokens_out, round(cost, 6), tuple(sorted(unpriced))
    )
