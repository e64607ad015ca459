"""Fixtures `app`, `client`, `members`: the approval app with a real members file and session
folder, over an in-memory channel (decisions are what these tests look at; the Redis side is
tested on a real Redis in tests/container/approval)."""

from __future__ import annotations

import queue
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from ironcurtain.approval.app import create_app
from ironcurtain.approval.events import Hub
from ironcurtain.escalation.channel import HistoryEntry, Outcome, Ruling, SessionInfo
from ironcurtain.escalation.labels import Registration
from ironcurtain.escalation.paging import Cursor, Order, Page, PageQuery, merge
from ironcurtain.escalation.record import Decision, Escalation, Invalid
from ironcurtain.escalation.remember import Scope
from ironcurtain.escalation.types import EscalationRequest, Verdict
from ironcurtain.people.members import MembersFile


class MemoryChannel:
    """Just enough of `Channel` for the pages and the API: first decision wins."""

    def __init__(self) -> None:
        self.records: dict[str, Escalation] = {}
        self.decisions: dict[str, Decision] = {}
        self.remembered: dict[str, dict[str, Scope]] = {}
        self.reviewed: set[str] = set()
        # What `ironcurtain run` registered (admin), by session; a test may store anything
        # here, as Redis hands it back (`raw`: HMGET's answer or the error of a wrong type).
        self.raw_registrations: dict[str, Any] = {}

    def register(self, session_id: str, *, worktree: str, agent: str, task: str) -> None:
        self.raw_registrations[session_id] = [worktree, agent, task]

    def registrations(self, session_ids: list[str]) -> dict[str, Registration]:
        found = {s: Registration.parse(self.raw_registrations.get(s)) for s in session_ids}
        return {s: r for s, r in found.items() if r is not None}

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

    def page(self, query: PageQuery) -> tuple[Page, list[Escalation | Invalid]]:
        """As Channel.page, over the records in memory (the same pure merge)."""
        runs: dict[str, list[Cursor]] = {}
        for e in self.pending():
            if query.session and e.session_id != query.session:
                continue
            registered = self.registrations([e.session_id]).get(e.session_id)
            if query.worktree and (registered is None or registered.worktree != query.worktree):
                continue  # as Channel: the registered worktree, never the record's claim
            runs.setdefault(e.session_id, []).append(Cursor(e.deadline, e.id))
        latest = query.order is Order.LATEST
        ordered = [sorted(r, reverse=latest) for r in runs.values()]
        merged = merge(ordered, query.cursor, query.order, query.limit + 1)
        total = sum(len(r) for r in ordered)
        entries = merged[: query.limit]
        page = Page(tuple(entries), len(merged) > query.limit, total)
        return page, [self.records[c.escalation_id] for c in entries]

    def auto_reviewed(self, session_ids: list[str]) -> set[str]:
        return {s for s in session_ids if s in self.reviewed}

    def decide(self, escalation_id: str, verdict: Verdict, *, by: str, **kw: Any) -> Ruling:
        if escalation_id not in self.records:
            return Ruling(Outcome.MISSING, None)
        if escalation_id in self.decisions:
            return Ruling(Outcome.ALREADY, self.decisions[escalation_id])
        shown = kw.get("shown_digest")
        if shown is not None and shown != self.records[escalation_id].digest():
            return Ruling(Outcome.CHANGED, None)  # as Channel.decide (atomic there: test_channel)
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


class FakePubSub:
    """A Redis subscription that delivers what a test puts in `messages` (keyspace style)."""

    def __init__(self, messages: queue.SimpleQueue[dict[str, Any]]) -> None:
        self.messages = messages
        self.patterns: tuple[str, ...] = ()

    def psubscribe(self, *patterns: str) -> None:
        self.patterns = patterns
        self.messages.put({"type": "psubscribe", "channel": patterns[0].encode()})

    def get_message(self, timeout: float) -> dict[str, Any] | None:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        pass


@pytest.fixture
def messages() -> queue.SimpleQueue[dict[str, Any]]:
    return queue.SimpleQueue()


@pytest.fixture
def hub(messages: queue.SimpleQueue[dict[str, Any]]) -> Iterator[Hub]:
    found = Hub(lambda: FakePubSub(messages), 0, slots=2, retry_s=0.05)
    yield found
    found.close()


@pytest.fixture
def app(channel: MemoryChannel, members: MembersFile, tmp_path: Path, hub: Hub) -> Flask:
    return create_app(
        {
            "CHANNEL": channel,
            "MEMBERS_FILE": members.path,
            "SESSION_DIR": tmp_path / "sessions",
            "PUBLIC_PORT": 8470,
            "TESTING": True,
            "HUB": hub,
        }
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf_of(page: bytes) -> str:
    found = re.search(rb'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1).decode()


def digest_of(page: bytes) -> str:
    """The digest of the escalation as the page shows it (its form's hidden field)."""
    found = re.search(rb'name="digest" value="([0-9a-f]{64})"', page)
    assert found, "no digest on the page"
    return found.group(1).decode()


def log_in(client: FlaskClient, name: str, token: str, next_path: str | None = None) -> Any:
    csrf = csrf_of(client.get("/login").data)
    query = {"next": next_path} if next_path is not None else {}
    return client.post(
        "/login", query_string=query, data={"name": name, "token": token, "csrf_token": csrf}
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
