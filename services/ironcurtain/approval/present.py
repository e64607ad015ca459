"""How escalations and decisions are shown: plain data for templates and the JSON API (pure)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from ..audit.redact import REDACTED
from ..escalation.channel import HistoryEntry, Ruling, SessionInfo
from ..escalation.record import Decision, Escalation, Invalid
from ..escalation.remember import Scope, choices

# How the proxy cuts long text in what it logs and shows (mcpproxy/gate.py _abbreviate).
_CUT = re.compile(r"\.\.\.\[\d+ chars, sha256 [0-9a-f]+\]$")


def scope_options(escalation: Escalation) -> list[Scope]:
    return choices(
        escalation.server,
        escalation.tool,
        escalation.arguments,
        escalation.paths,
        escalation.domains,
        escalation.arguments_digest,
    )


def notes(value: Any, where: str = "") -> list[str]:
    """Where the arguments shown are not the raw ones: redacted or cut text, by argument path
    (the human approves the raw call, bound by its digest; this says what they cannot see)."""
    found: list[str] = []
    if isinstance(value, str):
        if REDACTED in value:
            found.append(f"{where or 'the value'}: text was redacted (secret-looking)")
        if _CUT.search(value):
            found.append(f"{where or 'the value'}: long text was cut; only its start is shown")
    elif isinstance(value, dict):
        for key, item in value.items():
            found += notes(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            found += notes(item, f"{where}[{n}]")
    return found[:50]


def invalid_json(invalid: Invalid) -> dict[str, Any]:
    """A forged or malformed record, listed so a human sees it; never decidable."""
    return {
        "id": invalid.id,
        "session_id": invalid.session_id,
        "worktree": "",
        "call": "(invalid record)",
        "rule": "",
        "reason": f"not a valid escalation: {invalid.problem}",
        "created": "",
        "left": "",
        "invalid": True,
        "excerpt": invalid.excerpt,
    }


def row_json(found: Escalation | Invalid, now: float) -> dict[str, Any]:
    return invalid_json(found) if isinstance(found, Invalid) else escalation_json(found, now)


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
        "digest": escalation.digest(),
        "notes": notes(dict(escalation.arguments)),
        "invalid": False,
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
        "invalid": "Refused: the record is forged or malformed; nothing can be decided on it.",
        "changed": "Refused: the record changed while deciding; look at it again.",
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
