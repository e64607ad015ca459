"""How the CLI shows escalations in a terminal (pure: data in, text out).

Everything shown comes from an agent's tool call, so it is hostile text: a character reaches the
terminal raw only if it is on an allowlist (letters, marks, digits, punctuation, symbols, the
plain space). Everything else — control characters (ESC sequences), bidi overrides and isolates,
zero-width characters, line separators, unassigned code points — is written as a visible escape
(`\\u202e`), and a backslash as `\\\\`, so what is shown cannot be mistaken for an escape.
"""

from __future__ import annotations

import json
import unicodedata
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from . import labels
from .labels import Label, Registration

_SHOWN = ("L", "M", "N", "P", "S")  # Unicode major categories passed through
# Letters and marks that draw nothing (Hangul fillers, the grapheme joiner, Khmer inherent vowels,
# variation selectors): allowed by category, yet as invisible as a zero-width space.
_BLANK = frozenset("\u115f\u1160\u3164\uffa0\u034f\u17b4\u17b5") | frozenset(
    chr(c) for c in range(0xFE00, 0xFE10)
)
ELLIPSIS = "…"


def _escape(char: str) -> str:
    point = ord(char)
    if point < 0x100:
        return f"\\x{point:02x}"
    if point < 0x10000:
        return f"\\u{point:04x}"
    return f"\\U{point:08x}"


def neutral(text: str, quote: str = "") -> str:
    """`text` with every character off the allowlist made visible; `quote` also escaped."""
    out: list[str] = []
    for char in text:
        if char == "\\" or (quote and char == quote):
            out.append("\\" + char)
        elif char == " " or (unicodedata.category(char)[0] in _SHOWN and char not in _BLANK):
            out.append(char)
        else:
            out.append(_escape(char))
    return "".join(out)


def _columns(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def clip(text: str, width: int) -> str:
    """At most `width` terminal columns (of already neutral text), cut with an ellipsis."""
    if sum(_columns(c) for c in text) <= width:
        return text
    out: list[str] = []
    used = 0
    for char in text:
        if used + _columns(char) > width - 1:
            break
        out.append(char)
        used += _columns(char)
    return "".join(out) + ELLIPSIS


def scalar(value: Any) -> str:
    """One value as neutral text: strings quoted, anything else as its JSON."""
    if isinstance(value, str):
        return '"' + neutral(value, quote='"') + '"'
    return neutral(json.dumps(value, sort_keys=True, ensure_ascii=False, default=str))


def _urls(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        if value.strip().lower().startswith(("http://", "https://", "ws://", "wss://")):
            yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _urls(item)
    elif isinstance(value, list):
        for item in value:
            yield from _urls(item)


def urls(value: Any) -> list[str]:
    """The URL strings anywhere in `value` (arguments), each once, in order."""
    return list(dict.fromkeys(_urls(value)))


def host_of(url: str) -> str:
    """The host a URL really names (`https://good.example@evil.example/` -> evil.example)."""
    try:
        return urllib.parse.urlsplit(url.strip()).hostname or "?"
    except ValueError:
        return "?"


def targets(row: Mapping[str, Any]) -> str:
    """The call's key arguments: its paths, its URLs with their hosts, else its domains."""
    parts = [neutral(str(p)) for p in row.get("paths") or []]
    urls = list(dict.fromkeys(_urls(row.get("arguments") or {})))
    parts += [f"{neutral(u)} (host {neutral(host_of(u))})" for u in urls]
    if not urls:
        parts += [f"host {neutral(str(d))}" for d in row.get("domains") or []]
    return ", ".join(parts) if parts else "(no paths or urls)"


UNVERIFIED = "unverified: no registration"


def row_labels(row: Mapping[str, Any]) -> dict[str, Label]:
    """An API row's worktree, agent and task: as registered when the service says the session
    is (`registered`), with the record's own words (`claimed`) as the session's claim. A row
    without them (an older service) has unverified labels, its own fields the claims."""
    claimed = row.get("claimed")
    registration = None
    if row.get("registered") is True and isinstance(claimed, Mapping):
        registration = Registration(*(str(row.get(name, "")) for name in labels.FIELDS))
    found = labels.of(registration, claimed if isinstance(claimed, Mapping) else row)
    return {label.name: label for label in found}


def label_text(label: Label) -> str:
    """`wt-a`, `wt-a (the session claims "wt-b")`, or unverified with the claim: neutral."""
    text = neutral(label.registered) if label.registered is not None else UNVERIFIED
    if label.disputed:
        text += f' (the session claims "{neutral(label.claim, quote=chr(34))}")'
    return text


def labels_line(row: Mapping[str, Any]) -> str:
    """The session and its labels in full (the approval prompt shows it under the summary)."""
    found = row_labels(row)
    return f"session {neutral(str(row.get('session_id', '')))}  " + "  ".join(
        f"{name} {label_text(label)}" for name, label in found.items()
    )


def call_name(row: Mapping[str, Any]) -> str:
    return neutral(f"{row.get('server', '')}__{row.get('tool', '')}")


def summary(row: Mapping[str, Any], width: int = 120) -> str:
    """One pending escalation (a row of GET /api/v1/escalations) on one line of `width`."""
    ident = neutral(str(row.get("id", "")))
    session = clip(neutral(str(row.get("session_id", ""))), 20)
    if row.get("invalid"):
        line = f"{ident}  INVALID  {session}  {neutral(str(row.get('reason', '')))}"
    else:
        left = neutral(str(row.get("left", "")))
        rule = clip(neutral(str(row.get("rule", ""))), 30)
        where = label_text(row_labels(row)["worktree"])  # last: the call comes first
        line = (
            f"{ident}  {left:>7}  {session}  {call_name(row)}  [{rule}]  {targets(row)}  "
            f"worktree {where}"
        )
    return clip(line, max(width, 20))


def pretty(value: Any, indent: int = 2) -> list[str]:
    """Arguments as indented lines, every key and string neutral."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, Mapping) and value:
        for key in sorted(value, key=str):
            item = value[key]
            name = neutral(str(key))
            if isinstance(item, (Mapping, list)) and item:
                lines.append(f"{pad}{name}:")
                lines += pretty(item, indent + 2)
            else:
                lines.append(f"{pad}{name}: {scalar(item)}")
    elif isinstance(value, list) and value:
        for item in value:
            if isinstance(item, (Mapping, list)) and item:
                lines.append(f"{pad}-")
                lines += pretty(item, indent + 2)
            else:
                lines.append(f"{pad}- {scalar(item)}")
    else:
        lines.append(pad + scalar(value))
    return lines


def scope_line(choice: Mapping[str, Any]) -> str:
    return f"  {neutral(str(choice.get('id', '')))}  {neutral(str(choice.get('description', '')))}"


def decision_line(decision: Mapping[str, Any] | None) -> str:
    if not decision:
        return "pending"
    reason = neutral(str(decision.get("reason") or ""))
    line = (
        f"{neutral(str(decision.get('verdict', '')))} by {neutral(str(decision.get('by', '')))}"
        f" at {neutral(str(decision.get('when', '')))}"
    )
    return f"{line}: {reason}" if reason else line


def detail(
    escalation: Mapping[str, Any],
    choices: Iterable[Mapping[str, Any]] = (),
    decision: Mapping[str, Any] | None = None,
) -> list[str]:
    """Everything of one escalation (GET /api/v1/escalations/ID), as lines."""
    field = lambda name: neutral(str(escalation.get(name, "")))  # noqa: E731
    if escalation.get("invalid"):
        return [
            f"escalation {field('id')}: INVALID (forged or malformed; it cannot be decided)",
            f"session   {field('session_id')}",
            f"problem   {field('reason')}",
            f"excerpt   {field('excerpt')}",
        ]
    found = row_labels(escalation)
    lines = [
        f"escalation {field('id')}",
        f"session   {field('session_id')}  worktree {label_text(found['worktree'])}  "
        f"agent {label_text(found['agent'])}",
        f"task      {label_text(found['task'])}",
        f"call      {call_name(escalation)}",
        f"targets   {targets(escalation)}",
        f"rule      {field('rule')}",
        f"reason    {field('reason')}",
        f"created   {field('created')}  left {field('left')}",
        f"digest    {field('digest')}",
        f"decision  {decision_line(decision)}",
        "arguments:",
        *pretty(escalation.get("arguments", {})),
    ]
    notes = list(escalation.get("notes") or [])
    if notes:
        lines.append("not shown as sent (you approve the call as sent):")
        lines += [f"  {neutral(str(n))}" for n in notes]
    audit = list(escalation.get("recent_audit") or [])
    if audit:
        lines.append("recent audit:")
        lines += [f"  {neutral(str(a))}" for a in audit]
    offered = list(choices)
    if offered:
        lines.append("remember scopes offered (approve ID --remember SCOPE_ID):")
        lines += [scope_line(c) for c in offered]
    else:
        lines.append("remember scopes offered: none")
    return lines


def history_line(entry: Mapping[str, Any], width: int = 120) -> str:
    """One decided escalation (an entry of GET /api/v1/history) on one line of `width`."""
    row = entry.get("escalation") or {}
    decision = entry.get("decision") or {}
    when = neutral(str(decision.get("when", "")))
    verdict = neutral(str(decision.get("verdict", "?")))
    by = neutral(str(decision.get("by", "?")))
    line = (
        f"{when}  {verdict:<8} by {by}  {neutral(str(row.get('id', '')))}  "
        f"{clip(neutral(str(row.get('session_id', ''))), 20)}  {call_name(row)}  {targets(row)}"
    )
    return clip(line, max(width, 20))
