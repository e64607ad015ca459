"""How escalations and decisions are shown: plain data for templates and the JSON API (pure)."""

from __future__ import annotations

import difflib
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from ..audit.redact import REDACTED
from ..escalation import labels, terminal
from ..escalation.channel import HistoryEntry, Ruling, SessionInfo
from ..escalation.labels import Label, Registration
from ..escalation.paging import Page, PageQuery
from ..escalation.record import Decision, Escalation, Invalid
from ..escalation.remember import Scope, choices
from ..escalation.terminal import neutral

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


def targets(escalation: Escalation) -> list[dict[str, str]]:
    """What the call touches, shown neutral: its paths, and its URLs with the host each really
    names (`https://a.example@evil.example/` -> evil.example)."""
    found = [{"kind": "path", "text": neutral(p), "host": ""} for p in escalation.paths[:20]]
    for url in terminal.urls(dict(escalation.arguments))[:10]:
        found.append({"kind": "url", "text": neutral(url), "host": neutral(terminal.host_of(url))})
    if not any(t["kind"] == "url" for t in found):
        found += [{"kind": "domain", "text": "", "host": neutral(d)} for d in escalation.domains]
    return found


def label_json(label: Label) -> dict[str, Any]:
    """One label as a page shows it: the registered text (empty when unverified) and, marked
    apart from it, the session's claim where that differs (labels.py), both neutral."""
    return {
        "name": label.name,
        "text": neutral(label.registered or ""),
        "verified": label.verified,
        "disputed": label.disputed,
        "claim": neutral(label.claim, quote='"') if label.disputed else "",
    }


def labels_json(registration: Registration | None, claims: Mapping[str, Any]) -> dict[str, Any]:
    """`worktree`, `agent`, `task` as registered (neutral; empty when unverified) and `labels`,
    the three by name with the session's claims marked (label_json)."""
    found = labels.of(registration, claims)
    return {
        **{label.name: neutral(label.registered or "") for label in found},
        "labels": {label.name: label_json(label) for label in found},
    }


def _registered(registration: Registration | None) -> dict[str, str]:
    return {n: registration.get(n) for n in labels.FIELDS} if registration else {}


def _claims(escalation: Escalation) -> dict[str, str]:
    return {"worktree": escalation.worktree, "agent": escalation.agent, "task": escalation.task}


def shown(escalation: Escalation, registration: Registration | None) -> dict[str, Any]:
    """Every field a page shows, as neutral text: bidi overrides, zero-width and control
    characters made visible as escapes (terminal.neutral: the CLI's allowlist). The worktree,
    agent and task are the session's registration's; the record's own are its claim."""
    return {
        "id": neutral(escalation.id),
        "call": neutral(escalation.call),
        "session_id": neutral(escalation.session_id),
        **labels_json(registration, _claims(escalation)),
        "rule": neutral(escalation.rule),
        "reason": neutral(escalation.reason),
        "created": stamp(escalation.created_at),
        "deadline": stamp(escalation.deadline),
        "targets": targets(escalation),
    }


def invalid_json(invalid: Invalid, registration: Registration | None) -> dict[str, Any]:
    """A forged or malformed record, listed so a human sees it (with its session's registered
    labels: the record claims none); never decidable."""
    return {
        "id": invalid.id,
        "session_id": invalid.session_id,
        "worktree": registration.worktree if registration else "",
        "agent": registration.agent if registration else "",
        "task": registration.task if registration else "",
        "registered": registration is not None,
        "claimed": dict.fromkeys(labels.FIELDS, ""),
        "call": "(invalid record)",
        "rule": "",
        "reason": f"not a valid escalation: {invalid.problem}",
        "created": "",
        "left": "",
        "invalid": True,
        "excerpt": invalid.excerpt,
        "shown": {
            "id": neutral(invalid.id),
            "call": "(invalid record)",
            "session_id": neutral(invalid.session_id),
            # It claims nothing: its session's registered labels, undisputed.
            **labels_json(registration, _registered(registration)),
            "rule": "",
            "reason": neutral(f"not a valid escalation: {invalid.problem}"),
            "created": "",
            "deadline": "",
            "targets": [],
            "excerpt": neutral(invalid.excerpt),
        },
    }


def row_json(
    found: Escalation | Invalid, now: float, registered: Mapping[str, Registration]
) -> dict[str, Any]:
    """A row of a listing; `registered`: the registrations of the sessions on it (one read)."""
    registration = registered.get(found.session_id)
    if isinstance(found, Invalid):
        return invalid_json(found, registration)
    return escalation_json(found, now, registration)


def arguments_text(escalation: Escalation) -> str:
    """The arguments, one per line, every key and string neutral (terminal.pretty)."""
    return "\n".join(line[2:] for line in terminal.pretty(dict(escalation.arguments)))


def stamp(at: float) -> str:
    """A time with its UTC offset (RFC 3339 with a space; the service's zone, UTC in the
    container), e.g. `2026-12-03 07:57:39+00:00`."""
    offset = time.strftime("%z", time.localtime(at))
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) + f"{offset[:3]}:{offset[3:]}"


def page_json(
    page: Page,
    rows: list[Escalation | Invalid],
    query: PageQuery,
    now: float,
    reviewed: set[str] = frozenset(),  # type: ignore[assignment]
    *,
    registered: Mapping[str, Registration],
) -> dict[str, Any]:
    """A page of the pending list as the API answers it (and the page's script reads);
    `reviewed`: the sessions whose auto-reviewer is on; `registered`: the registrations of the
    sessions on the page (Channel.registrations, one read)."""
    following = page.next
    listed = [row_json(e, now, registered) for e in rows]
    for row in listed:
        row["auto_review"] = row["session_id"] in reviewed
    return {
        "escalations": listed,
        "total": page.total,
        "order": query.order.value,
        "limit": query.limit,
        "next": following.encode() if following else None,
        "now": now,
    }


def left(escalation: Escalation, now: float) -> str:
    seconds = int(escalation.deadline - now)
    return f"{seconds}s" if seconds > 0 else "expired"


def escalation_json(
    escalation: Escalation, now: float, registration: Registration | None
) -> dict[str, Any]:
    """The record for the API, but with `worktree`, `agent` and `task` as the session was
    registered (empty, and `registered` false, when it was not); the record's own words are
    under `claimed` (the session's claim; what the CLI marks where it differs)."""
    return {
        **escalation.to_dict(),
        "worktree": registration.worktree if registration else "",
        "agent": registration.agent if registration else "",
        "task": registration.task if registration else "",
        "registered": registration is not None,
        "claimed": _claims(escalation),
        "call": escalation.call,
        "created": stamp(escalation.created_at),
        "left": left(escalation, now),
        "digest": escalation.digest(),
        "notes": notes(dict(escalation.arguments)),
        "invalid": False,
        "shown": shown(escalation, registration),
    }


def decision_json(decision: Decision | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    return {
        **decision.to_dict(),
        "when": stamp(decision.at),
        "shown": {"by": neutral(decision.by), "reason": neutral(decision.reason)},
    }


def scope_json(scope: Scope) -> dict[str, Any]:
    return {**scope.to_dict(), "id": scope.id, "description": scope.describe()}


_DIGEST = re.compile(r"[0-9a-f]{64}")
DIGEST_REQUIRED = (
    "digest required: an approval names the `digest` of the escalation as it was shown "
    "(GET /api/v1/escalations/ID gives it as escalation.digest)"
)


def is_digest(value: Any) -> bool:
    """An Escalation.digest() as a client sends it back: 64 lowercase hex digits."""
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


def ruling_text(ruling: Ruling) -> str:
    standing = ruling.decision
    who = f"{standing.verdict.value} by {standing.by}" if standing else ""
    return {
        "decided": f"Recorded: {who}.",
        "already": f"Refused: it was already decided ({who}).",
        "late": "Refused: too late, the deadline had passed; it is recorded as expired.",
        "missing": "Refused: no such escalation (it may have been cleaned up).",
        "invalid": "Refused: the record is forged or malformed; nothing can be decided on it.",
        "changed": "Refused: the request changed since it was shown to you (its digest "
        "differs); nothing was decided; look at it again.",
    }[ruling.outcome.value]


def history_json(
    entry: HistoryEntry, now: float, registered: Mapping[str, Registration]
) -> dict[str, Any]:
    return {
        "escalation": escalation_json(
            entry.escalation, now, registered.get(entry.escalation.session_id)
        ),
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


def bulk_text(outcomes: dict[str, int]) -> str:
    """What a bulk deny did, e.g. "Denied 3; refused 1 (already)."."""
    denied = outcomes.get("decided", 0)
    refused = ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items()) if k != "decided")
    return f"Denied {denied}" + (f"; refused {refused}." if refused else ".")


# -- the detail page: what the call would change, and the session's recent audit -----------

DIFF_LINES = 400  # lines of a diff or a written file shown; the rest is counted


def _lines(kind: str, text: str) -> list[dict[str, str]]:
    return [{"kind": kind, "text": neutral(line)} for line in text.splitlines()]


def _diff(old: str, new: str, name: str) -> list[dict[str, str]]:
    found = []
    for line in difflib.unified_diff(
        old.splitlines(), new.splitlines(), f"{name} (as the edit expects)", "after", lineterm=""
    ):
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same")
        if line.startswith(("+++", "---")):
            kind = "file"
        found.append({"kind": kind, "text": neutral(line)})
    return found


def changes(escalation: Escalation) -> dict[str, Any] | None:
    """What the call would change, from what the record carries (the service cannot read the
    workspace: an edit's diff is between its own oldText and newText, a write shows the new
    content whole). None for calls that change no file."""
    args = escalation.arguments
    tool = escalation.tool
    if tool == "edit_file" and isinstance(args.get("edits"), list):
        path = str(args.get("path", ""))
        lines: list[dict[str, str]] = []
        for n, edit in enumerate(args["edits"][:50]):
            if not isinstance(edit, dict):
                continue
            old, new = edit.get("oldText", ""), edit.get("newText", "")
            if isinstance(old, str) and isinstance(new, str):
                lines += [{"kind": "hunk", "text": f"edit {n + 1}"}, *_diff(old, new, path)]
        return {
            "kind": "diff",
            "note": "The edit's own text before and after (oldText -> newText); the service "
            "cannot read the file, so the rest of it is not shown.",
            "lines": lines[:DIFF_LINES],
            "cut": max(0, len(lines) - DIFF_LINES),
        }
    if tool == "write_file" and isinstance(args.get("content"), str):
        lines = _lines("add", args["content"])
        return {
            "kind": "write",
            "note": "The whole new content; it replaces the file if one exists (the service "
            "cannot read the current file, so no diff against it is shown).",
            "lines": lines[:DIFF_LINES],
            "cut": max(0, len(lines) - DIFF_LINES),
        }
    if tool == "move_file":
        return {
            "kind": "move",
            "before": neutral(str(args.get("source", ""))),
            "after": neutral(str(args.get("destination", ""))),
        }
    return None


AUDIT_COLUMNS = ("time", "event", "tool", "effect", "rule", "reason")


def audit_rows(lines: tuple[str, ...] | list[str]) -> list[dict[str, str]]:
    """The session's recent audit lines as table rows (neutral text); a line that is not a
    JSON object is shown whole under `other`."""
    rows = []
    for line in lines[-50:]:
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            rows.append({**dict.fromkeys(AUDIT_COLUMNS, ""), "other": neutral(line[:500])})
            continue
        row = {}
        for column in AUDIT_COLUMNS:
            value = record.get(column, "")
            if column == "time" and isinstance(value, int | float) and not isinstance(value, bool):
                value = stamp(float(value))
            row[column] = neutral(value if isinstance(value, str) else json.dumps(value))
        rest = {k: v for k, v in record.items() if k not in AUDIT_COLUMNS and k != "chain"}
        row["other"] = neutral(json.dumps(rest, sort_keys=True, ensure_ascii=False)[:500])
        rows.append(row)
    return rows
