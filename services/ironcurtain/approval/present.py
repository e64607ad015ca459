"""How escalations and decisions are shown: plain data for templates and the JSON API (pure)."""

from __future__ import annotations

import json
import time
from typing import Any

from ..escalation.channel import HistoryEntry, Ruling, SessionInfo
from ..escalation.record import Decision, Escalation
from ..escalation.remember import Scope, choices


def scope_options(escalation: Escalation) -> list[Scope]:
    return choices(
        escalation.server,
        escalation.tool,
        escalation.arguments,
        escalation.paths,
        escalation.domains,
    )


def arguments_text(escalation: Escalation) -> str:
    return json.dumps(escalation.arguments, indent=2, sort_keys=True, ensure_ascii=False)


def stamp(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def left(escalation: Escalation, now: float) -> str:
    seconds = int(escalation.deadline - now)
    return f"{seconds}s" if seconds > 0 else "expired"


def escalation_json(escalation: Escalation, now: float) -> dict[str, Any]:
    return {
        **escalation.to_dict(),
        "call": escalation.call,
        "created": stamp(escalation.created_at),
        "left": left(escalation, now),
    }


def decision_json(decision: Decision | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    return {**decision.to_dict(), "when": stamp(decision.at)}


def scope_json(scope: Scope) -> dict[str, Any]:
    return {**scope.to_dict(), "id": scope.id, "description": scope.describe()}


def ruling_text(ruling: Ruling) -> str:
    standing = ruling.decision
    who = f"{standing.verdict.value} by {standing.by}" if standing else ""
    return {
        "decided": f"Recorded: {who}.",
        "already": f"Refused: it was already decided ({who}).",
        "late": "Refused: too late, the deadline had passed; it is recorded as expired.",
        "missing": "Refused: no such escalation (it may have been cleaned up).",
    }[ruling.outcome.value]


def history_json(entry: HistoryEntry, now: float) -> dict[str, Any]:
    return {
        "escalation": escalation_json(entry.escalation, now),
        "decision": decision_json(entry.decision),
    }


def session_json(info: SessionInfo) -> dict[str, Any]:
    return {
        "session_id": info.session_id,
        "worktree": info.worktree,
        "agent": info.agent,
        "task": info.task,
        "last_seen": stamp(info.last_seen),
        "escalations": info.escalations,
        "pending": info.pending,
        "status": "waiting for a human" if info.pending else "running or ended",
        "remembered": [scope_json(s) for s in info.remembered],
    }
