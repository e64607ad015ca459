"""`ironcurtain shared member add | remove | list` and `shared login`, through the CLI's main()."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ironcurtain.cli import main
from ironcurtain.people.client import ApiError, Client
from ironcurtain.people.members import find
from ironcurtain.shared.files import SharedFiles


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SharedFiles:
    monkeypatch.setenv("IRONCURTAIN_SHARED_DIR", str(tmp_path / "shared"))
    monkeypatch.setenv("IRONCURTAIN_STATE_DIR", str(tmp_path / "state"))
    return SharedFiles(tmp_path / "shared")


def test_member_add_prints_the_token_once_and_keeps_only_its_digest(
    shared: SharedFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["shared", "member", "add", "alice"]) == 0
    token = capsys.readouterr().out.splitlines()[1]
    assert find(shared.members().load(), token).name == "alice"  # type: ignore[union-attr]
    assert token not in shared.members().path.read_text()
    assert main(["shared", "member", "list"]) == 0
    listed = capsys.readouterr().out
    assert [line.split()[0] for line in listed.splitlines()] == ["admin", "alice"]
    assert token not in listed


def test_member_add_refuses_a_bad_name_and_a_second_add(
    shared: SharedFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["shared", "member", "add", "../root"]) == 1
    assert "refused" in capsys.readouterr().err
    assert main(["shared", "member", "add", "alice"]) == 0
    assert main(["shared", "member", "add", "alice"]) == 1
    assert "exists" in capsys.readouterr().err


def test_member_remove_revokes_and_says_when_there_is_no_such_member(
    shared: SharedFiles, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ending their session users needs the team Redis: tests/container/test_registrar.py."""
    ended: list[str] = []
    monkeypatch.setattr(
        "ironcurtain.shared.command._end_member_sessions", lambda name: ended.append(name) or 0
    )
    main(["shared", "member", "add", "alice"])
    assert main(["shared", "member", "remove", "alice"]) == 0
    assert ended == ["alice"]
    assert "alice" not in shared.members().load()
    assert main(["shared", "member", "remove", "alice"]) == 1
    assert "no member" in capsys.readouterr().err


def test_login_stores_the_checked_token_0600_in_the_state_folder(
    shared: SharedFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Client, "whoami", lambda self: "alice")
    monkeypatch.setattr("sys.stdin", io.StringIO("a-token\n"))
    assert main(["shared", "login"]) == 0
    stored = tmp_path / "state" / "member_token"
    assert stored.read_text() == "a-token\n"
    assert stored.stat().st_mode & 0o777 == 0o600


def test_login_with_a_token_the_service_refuses_stores_nothing(
    shared: SharedFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Client) -> str:
        raise ApiError(401, "a member's valid bearer token is required")

    monkeypatch.setattr(Client, "whoami", refuse)
    monkeypatch.setattr("sys.stdin", io.StringIO("wrong\n"))
    assert main(["shared", "login"]) == 1
    assert not (tmp_path / "state" / "member_token").exists()
