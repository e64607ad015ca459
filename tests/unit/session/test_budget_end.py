"""`ironcurtain run` ending a session over its Redis budget (session/run.py, _end_session): it
says so, removes the session's Redis user at once and never puts it back, and the agent is
killed as when a door dies."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ironcurtain.escalation.acl import Credential
from ironcurtain.session.run import Session, SessionFailed

CREDENTIAL = Credential("ironcurtain-session-abc", "a" * 96)
REASON = "the session exceeded its Redis budget (2001 keys, more than its 2000)"


class FakeRegistrar:
    def __init__(self) -> None:
        self.removed: list[str] = []
        self.restored: list[str] = []

    def remove_user(self, session_id: str) -> None:
        self.removed.append(session_id)

    def restore_user(self, session_id: str, credential: Credential, **fields: Any) -> bool:
        self.restored.append(session_id)
        return True


class FakeEngine:
    def info(self) -> dict[str, str]:
        return {"ID": "engine-b"}

    @property
    def containers(self) -> Any:
        return SimpleNamespace(list=lambda **_: [])


class FakeAgent:
    def __init__(self) -> None:
        self.killed = threading.Event()

    def kill(self) -> None:
        self.killed.set()


def session(tmp_path: Path) -> tuple[Session, FakeRegistrar, list[str]]:
    said: list[str] = []
    found = Session.__new__(Session)
    found.plan = SimpleNamespace()
    found.name = SimpleNamespace(session_id="abc", project="ic-wt-abc", worktree="wt")
    found.adapter = SimpleNamespace(name="scripted")
    found.options = SimpleNamespace(task="t")
    found.client = FakeEngine()
    found.say = said.append
    found.rooms_up = set()
    found._dropping = threading.Lock()
    registrar = FakeRegistrar()
    found._registrar = registrar
    found._registered = True
    found._user_admin = None
    return found, registrar, said


def test_over_budget_the_user_goes_at_once_and_the_reason_is_said(tmp_path: Path) -> None:
    found, registrar, said = session(tmp_path)
    found._end_session(REASON)
    assert said == [f"run: {REASON}: stopped"]
    assert registrar.removed == ["abc"]
    found._end_session("again")  # once: the first reason stands
    assert registrar.removed == ["abc"]
    assert found._ended == REASON
    found._drop_user()  # teardown afterwards removes nothing twice
    assert registrar.removed == ["abc"]


def test_a_removed_user_is_never_put_back_by_the_notices_loop_or_the_watcher(
    tmp_path: Path,
) -> None:
    found, registrar, _ = session(tmp_path)
    path = tmp_path / "redis_password"
    path.write_text(CREDENTIAL.line())
    assert found._restore_session_user(path)  # control: before, a restart is repaired
    found._end_session(REASON)
    assert not found._restore_session_user(path)
    assert registrar.restored == ["abc"]


def test_the_agent_is_killed_as_when_a_door_dies(tmp_path: Path) -> None:
    found, _, _ = session(tmp_path)
    agent, stop = FakeAgent(), threading.Event()
    watcher = threading.Thread(target=found._watch_proxies, args=(agent, stop))
    watcher.start()
    found._end_session(REASON)
    assert agent.killed.wait(5)
    watcher.join(5)
    stop.set()


def test_a_session_over_budget_before_its_agent_started_fails_with_the_reason(
    tmp_path: Path,
) -> None:
    found, _, _ = session(tmp_path)
    found.compose = SimpleNamespace()
    found._end_session(REASON)
    with pytest.raises(SessionFailed, match="exceeded its Redis budget"):
        found.run_agent()
