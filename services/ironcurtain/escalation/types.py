"""The contract between the MCP policy proxy (which escalates) and the channel (which decides).

The proxy builds an EscalationRequest when policy says `escalate` and awaits an Escalator;
whatever happens (approved, denied, expired, channel down) comes back as an EscalationOutcome,
never as an exception, so the proxy can audit it and answer the agent. Only APPROVED allows.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class Verdict(enum.Enum):
    APPROVED = "approved"  # a human (or a remembered approval / the auto-reviewer) said yes
    DENIED = "denied"  # a human said no
    EXPIRED = "expired"  # nobody decided by the deadline: deny, and tell the agent it timed out
    UNAVAILABLE = "unavailable"  # the channel is down or not configured: deny at once


@dataclass(frozen=True, slots=True)
class EscalationRequest:
    session_id: str
    worktree: str
    agent: str
    server: str
    tool: str
    arguments: Mapping[str, Any]  # redacted as in the audit log
    rule: str  # the policy rule that escalated
    reason: str  # the rule's human reason
    task: str = ""  # the user's task, for the human's context
    paths: tuple[str, ...] = ()  # resolved path arguments, for "approve and remember" scopes
    domains: tuple[str, ...] = ()  # host names of url arguments, likewise
    recent_audit: tuple[str, ...] = field(default=())  # the session's last audit lines
    # Keyed digest of the raw, unredacted arguments (remember.arguments_digest with the proxy's
    # key): what "exactly this call" and a decision are bound to; the raw values never leave.
    arguments_digest: str = ""


@dataclass(frozen=True, slots=True)
class EscalationOutcome:
    verdict: Verdict
    message: str  # what the agent is told: who decided and why, or why nobody could
    escalation_id: str | None = None
    decided_by: str | None = None

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.APPROVED


class Escalator(Protocol):
    async def escalate(self, request: EscalationRequest, timeout_s: float) -> EscalationOutcome:
        """Wait (at most timeout_s) for a decision. Never raises for channel failures."""
        ...


class UnavailableEscalator:
    """Used when no channel is configured: every escalation is denied at once, saying why."""

    def __init__(self, why: str = "no escalation channel is configured for this session") -> None:
        self._why = why

    async def escalate(self, request: EscalationRequest, timeout_s: float) -> EscalationOutcome:
        return EscalationOutcome(
            verdict=Verdict.UNAVAILABLE,
            message=f"escalation of {request.server}__{request.tool} denied: {self._why}",
        )
