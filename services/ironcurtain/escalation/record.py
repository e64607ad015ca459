"""The escalation as stored and shown: a typed record and the decision on it (pure, no I/O).

Both sides of the channel (the MCP proxy that asks, the approval service that decides) read and
write these as JSON; parsing at the edge turns anything malformed into a ValueError.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .. import strictjson
from ..strictjson import StrictJSONError
from . import redis_keys
from .remember import Scope
from .types import EscalationRequest, Verdict

# Who decides when nobody did: recorded as the decider of an expired escalation.
DEADLINE = "deadline"
# The auto-reviewer's name in decisions: given by the key it decides under (redis_keys.review).
AUTO_REVIEWER = "auto-reviewer"
MAX_RECORD_BYTES = 256 * 1024  # a proxy's records are a few KB (arguments bounded at the edge)
MAX_RECORD_DEPTH = 32
HISTORY_RECORD_BYTES = 16 * 1024  # what the history keeps of one record (history_json)
LATEST_TIME = 32503680000.0  # 3000-01-01: later "times" are refused as not times


def new_id(session_id: str) -> str:
    """Unguessable, URL-safe, and naming its session (see redis_keys.py): `<session>.<16 hex>`."""
    return f"{redis_keys.check_session(session_id)}.{secrets.token_hex(8)}"


@dataclass(frozen=True, slots=True)
class Escalation:
    id: str
    session_id: str
    worktree: str
    agent: str
    server: str
    tool: str
    arguments: Mapping[str, Any]
    rule: str
    reason: str
    created_at: float
    deadline: float
    task: str = ""
    paths: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    recent_audit: tuple[str, ...] = field(default=())
    arguments_digest: str = ""  # keyed digest of the raw, unredacted arguments (the proxy's)

    @classmethod
    def from_request(
        cls, request: EscalationRequest, *, id: str, now: float, timeout_s: float
    ) -> Escalation:
        return cls(
            id=id,
            session_id=request.session_id,
            worktree=request.worktree,
            agent=request.agent,
            server=request.server,
            tool=request.tool,
            arguments=dict(request.arguments),
            rule=request.rule,
            reason=request.reason,
            created_at=now,
            deadline=now + timeout_s,
            task=request.task,
            paths=tuple(request.paths),
            domains=tuple(request.domains),
            recent_audit=tuple(request.recent_audit),
            arguments_digest=request.arguments_digest,
        )

    @property
    def call(self) -> str:
        return f"{self.server}__{self.tool}"

    def digest(self) -> str:
        """The request as shown to the human: a decision names it, the proxy compares it with
        the call it holds (tool, arguments shown and raw, session, rule, deadline)."""
        bound = {
            "id": self.id,
            "session_id": self.session_id,
            "server": self.server,
            "tool": self.tool,
            "arguments": self.arguments,
            "arguments_digest": self.arguments_digest,
            "rule": self.rule,
            "paths": list(self.paths),
            "domains": list(self.domains),
            "deadline": self.deadline,
        }
        canonical = json.dumps(bound, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "session_id": self.session_id,
            "worktree": self.worktree,
            "agent": self.agent,
            "server": self.server,
            "tool": self.tool,
            "arguments": dict(self.arguments),
            "rule": self.rule,
            "reason": self.reason,
            "created_at": self.created_at,
            "deadline": self.deadline,
            "task": self.task,
            "paths": list(self.paths),
            "domains": list(self.domains),
            "recent_audit": list(self.recent_audit),
            "arguments_digest": self.arguments_digest,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def history_json(self) -> str:
        """The copy the history keeps: the record itself up to HISTORY_RECORD_BYTES, else the
        record with its long parts cut and saying so. An honest proxy's records are a few KB;
        a session writing 256 KB records would otherwise grow the 10,000-entry history to GBs."""
        whole = self.to_json()
        if len(whole.encode()) <= HISTORY_RECORD_BYTES:
            return whole
        note = f"(cut: the record was {len(whole.encode())} bytes; the history keeps 16 KiB)"
        cut = replace(
            self,
            worktree=self.worktree[:200],
            agent=self.agent[:200],
            server=self.server[:200],
            tool=self.tool[:200],
            arguments={"(cut)": note},
            rule=self.rule[:200],
            reason=self.reason[:500],
            task=self.task[:500],
            paths=tuple(p[:200] for p in self.paths[:5]),
            domains=tuple(d[:100] for d in self.domains[:5]),
            recent_audit=(),
            arguments_digest=self.arguments_digest[:128],
        )
        kept = cut.to_json()
        if len(kept.encode()) > HISTORY_RECORD_BYTES:  # escaped non-ASCII text: cut deeper
            kept = replace(cut, reason="", task="", paths=(), domains=()).to_json()
        return kept

    @classmethod
    def from_json(cls, text: str | bytes) -> Escalation:
        data = _object(text)
        try:
            arguments = data["arguments"]
            if not isinstance(arguments, dict):
                raise ValueError("arguments is not an object")
            return cls(
                id=_str(data, "id"),
                session_id=_str(data, "session_id"),
                worktree=_str(data, "worktree"),
                agent=_str(data, "agent"),
                server=_str(data, "server"),
                tool=_str(data, "tool"),
                arguments=arguments,
                rule=_str(data, "rule"),
                reason=_str(data, "reason"),
                created_at=_num(data, "created_at"),
                deadline=_num(data, "deadline"),
                task=_str(data, "task"),
                paths=_strs(data, "paths"),
                domains=_strs(data, "domains"),
                recent_audit=_strs(data, "recent_audit"),
                arguments_digest=_str(data, "arguments_digest")
                if "arguments_digest" in data
                else "",
            )
        except KeyError as exc:
            raise ValueError(f"escalation record lacks {exc}") from None


@dataclass(frozen=True, slots=True)
class Invalid:
    """A record under an escalation's key that is not a valid escalation of that id and session
    (forged, malformed, truncated): shown as such, never decided."""

    id: str
    session_id: str
    problem: str
    excerpt: str  # the start of the raw bytes, for the human (escaped when shown)


def read_record(escalation_id: str, raw: bytes | str) -> Escalation | Invalid:
    """The record stored under `escalation_id`'s key, checked against the key it came from."""
    try:
        session_id = redis_keys.session_of(escalation_id)
    except ValueError as exc:
        return Invalid(escalation_id, "", str(exc), "")
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        escalation = Escalation.from_json(raw)
        if escalation.id != escalation_id:
            raise ValueError("its id is not the id it is stored under")
        if escalation.session_id != session_id:
            raise ValueError("its session is not the session its id names")
        if not (escalation.created_at <= escalation.deadline):
            raise ValueError("its deadline is before its creation")
    except ValueError as exc:
        return Invalid(escalation_id, session_id, str(exc)[:200], text[:200])
    return escalation


@dataclass(frozen=True, slots=True)
class Decision:
    escalation_id: str
    verdict: Verdict  # APPROVED, DENIED or EXPIRED
    by: str
    at: float
    reason: str = ""
    remember: Scope | None = None  # approve-and-remember: the scope kept for the session
    request_digest: str = ""  # Escalation.digest() of the record the decider saw

    def to_dict(self) -> dict[str, Any]:
        return {
            "escalation_id": self.escalation_id,
            "verdict": self.verdict.value,
            "by": self.by,
            "at": self.at,
            "reason": self.reason,
            "remember": self.remember.to_dict() if self.remember else None,
            "request_digest": self.request_digest,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Decision:
        data = _object(text)
        try:
            verdict = Verdict(data["verdict"])
            remember = data.get("remember")
            return cls(
                escalation_id=_str(data, "escalation_id"),
                verdict=verdict,
                by=_str(data, "by"),
                at=_num(data, "at"),
                reason=_str(data, "reason"),
                remember=Scope.from_dict(remember) if remember is not None else None,
                request_digest=_str(data, "request_digest") if "request_digest" in data else "",
            )
        except KeyError as exc:
            raise ValueError(f"decision record lacks {exc}") from None


def _object(text: str | bytes) -> dict[str, Any]:
    """A record as a session (or anyone with its credential) may have written it: read strictly,
    bounded in size and depth, so one record can make itself invalid but never break a page."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if len(raw) > MAX_RECORD_BYTES:
        raise ValueError(f"larger than {MAX_RECORD_BYTES} bytes")
    try:
        data = strictjson.loads(raw, max_depth=MAX_RECORD_DEPTH)
    except StrictJSONError as exc:
        if exc.kind == "invalid":
            raise ValueError("not JSON") from None
        raise ValueError(f"not strict JSON ({exc.kind.replace('_', ' ')})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _str(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} is not a string")
    return value


def _num(data: dict[str, Any], key: str) -> float:
    """A time in seconds since the epoch: a number within what a clock can say (a page formats
    it; 1e20 or a negative year would fail there)."""
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} is not a number")
    if not 0 <= value <= LATEST_TIME:
        raise ValueError(f"{key} is not a time")
    return float(value)


def _strs(data: dict[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key} is not a list of strings")
    return tuple(value)
