"""After a Redis restart, `ironcurtain run` puts its session's user back: through the registrar
on a joined machine (the password it holds as proof), with the admin credential on a team
server; a failure is left to the next try, never raised into the notices loop."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker
import pytest

from ironcurtain.escalation.acl import Credential
from ironcurtain.registrar.client import RegistrarError
from ironcurtain.session.run import Session

CREDENTIAL = Credential("ironcurtain-session-abc", "a" * 96)


class FakeRegistrar:
    def __init__(self, answer: bool | Exception) -> None:
        self.answer = answer
        self.calls: list[tuple[str, Credential, dict[str, Any]]] = []

    def restore_user(self, session_id: str, credential: Credential, **fields: Any) -> bool:
        self.calls.append((session_id, credential, fields))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class FakeEngine:
    def info(self) -> dict[str, str]:
        return {"ID": "engine-b"}


def session(registrar: FakeRegistrar | None, tmp_path: Path) -> tuple[Session, Path]:
    found = Session.__new__(Session)
    found.plan = SimpleNamespace()
    found.name = SimpleNamespace(session_id="abc", project="ic-wt-abc", worktree="wt")
    found.adapter = SimpleNamespace(name="scripted")
    found.options = SimpleNamespace(task="t")
    found.client = FakeEngine()
    found._registrar = registrar
    found._user_admin = None
    path = tmp_path / "redis_password"
    path.write_text(CREDENTIAL.line())
    return found, path


def test_a_joined_session_asks_the_registrar_with_the_password_it_holds(tmp_path: Path) -> None:
    registrar = FakeRegistrar(True)
    found, path = session(registrar, tmp_path)
    assert found._restore_session_user(path)
    [(session_id, credential, fields)] = registrar.calls
    assert (session_id, credential.password) == ("abc", CREDENTIAL.password)
    assert fields == {
        "project": "ic-wt-abc", "machine": "engine-b", "worktree": "wt", "agent": "scripted",
        "task": "t",
    }  # fmt: skip


@pytest.mark.parametrize(
    "answer", [False, RegistrarError(403, "no"), RegistrarError(0, "unreachable")]
)
def test_a_user_that_is_there_or_a_refusal_is_no_restore_and_raises_nothing(
    tmp_path: Path, answer: bool | Exception
) -> None:
    found, path = session(FakeRegistrar(answer), tmp_path)
    assert not found._restore_session_user(path)


def test_an_unreadable_credential_or_no_way_to_restore_is_no_restore(tmp_path: Path) -> None:
    found, path = session(None, tmp_path)
    assert not found._restore_session_user(path)  # no registrar, no admin: nothing to do
    found, path = session(FakeRegistrar(True), tmp_path)
    path.write_text("garbage")
    assert not found._restore_session_user(path)


def test_the_engine_being_down_is_no_restore(tmp_path: Path) -> None:
    class DownEngine:
        def info(self) -> dict[str, str]:
            raise docker.errors.DockerException("down")

    found, path = session(FakeRegistrar(True), tmp_path)
    found.client = DownEngine()
    assert found._restore_session_user(path)  # the host name stands in for the engine id
