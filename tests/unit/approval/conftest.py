"""Fixtures `app`, `client`, `members`: the approval app with a real members file and session
folder, over an in-memory channel (decisions are what these tests look at; the Redis side is
tested on a real Redis in tests/container/approval)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from ironcurtain.approval import create_app
from ironcurtain.approval.members import MembersFile
from ironcurtain.escalation.channel import HistoryEntry, Outcome, Ruling, SessionInfo
from ironcurtain.escalation.record import Decision, Escalation
from ironcurtain.escalation.remember import Scope
from ironcurtain.escalation.types import EscalationRequest, Verdict


class MemoryChannel:
    """Just enough of `Channel` for the pages and the API: first decision wins."""

    def __init__(self) -> None:
        self.records: dict[str, Escalation] = {}
        self.decisions: dict[str, Decision] = {}
        self.remembered: dict[str, dict[str, Scope]] = {}

    def create(self, request: EscalationRequest, timeout_s: float = 60) -> Escalation:
        escalation = Escalation.from_request(
            request, id=f"e{len(self.records) + 1:04d}", now=time.time(), timeout_s=timeout_s
        )
        self.records[escalation.id] = escalation
        return escalation

    def get(self, escalation_id: str) -> Escalation | None:
        return self.records.get(escalation_id)

    def decision(self, escalation_id: str) -> Decision | None:
        return self.decisions.get(escalation_id)

    def pending(self) -> list[Escalation]:
        return [e for i, e in self.records.items() if i not in self.decisions]

    def decide(self, escalation_id: str, verdict: Verdict, *, by: str, **kw: Any) -> Ruling:
        if escalation_id not in self.records:
            return Ruling(Outcome.MISSING, None)
        if escalation_id in self.decisions:
            return Ruling(Outcome.ALREADY, self.decisions[escalation_id])
        scope = kw.get("remember")
        decision = Decision(escalation_id, verdict, by, time.time(), kw.get("reason", ""), scope)
        self.decisions[escalation_id] = decision
        if scope is not None:
            session = self.records[escalation_id].session_id
            self.remembered.setdefault(session, {})[scope.id] = scope
        return Ruling(Outcome.DECIDED, decision)

    def history(self, **filters: Any) -> list[HistoryEntry]:
        entries = [HistoryEntry(self.records[i], d) for i, d in self.decisions.items()]
        wanted = filters.get("session_id")
        entries = [h for h in entries if not wanted or h.escalation.session_id == wanted]
        return sorted(entries, key=lambda h: h.decision.at, reverse=True)

    def sessions(self) -> list[SessionInfo]:
        ids = dict.fromkeys([e.session_id for e in self.records.values()] + [*self.remembered])
        return [
            SessionInfo(
                i, "", "", "", time.time(), 0, 0, tuple(self.remembered.get(i, {}).values())
            )
            for i in ids
        ]

    def revoke(self, session_id: str, scope_id: str) -> bool:
        return self.remembered.get(session_id, {}).pop(scope_id, None) is not None


def escalation_request(**extra: Any) -> EscalationRequest:
    fields: dict[str, Any] = {
        "session_id": "s1",
        "worktree": "wt-main",
        "agent": "claude-code",
        "server": "filesystem",
        "tool": "write_file",
        "arguments": {"path": "/work/src/a.py", "content": "x"},
        "rule": "writes-need-a-human",
        "reason": "writes need a human",
        "task": "fix it",
        "paths": ("/work/src/a.py",),
        **extra,
    }
    return EscalationRequest(**fields)


@pytest.fixture
def members(tmp_path: Path) -> MembersFile:
    return MembersFile(tmp_path / "people" / "members.json")


@pytest.fixture
def tokens(members: MembersFile) -> dict[str, str]:
    return {name: members.add(name) for name in ("alice", "bob")}


@pytest.fixture
def channel() -> MemoryChannel:
    return MemoryChannel()


@pytest.fixture
def app(channel: MemoryChannel, members: MembersFile, tmp_path: Path) -> Flask:
    return create_app(
        {
            "CHANNEL": channel,
            "MEMBERS_FILE": members.path,
            "SESSION_DIR": tmp_path / "sessions",
            "PUBLIC_PORT": 8470,
            "TESTING": True,
        }
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf_of(page: bytes) -> str:
    found = re.search(rb'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1).decode()


def log_in(client: FlaskClient, name: str, token: str, next_path: str | None = None) -> Any:
    csrf = csrf_of(client.get("/login").data)
    query = {"next": next_path} if next_path is not None else {}
    return client.post(
        "/login", query_string=query, data={"name": name, "token": token, "csrf_token": csrf}
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
