"""The workspace checks: protected paths inside it, and whether the agent's uid can write it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ironcurtain.session import run, workspace
from ironcurtain.session.identity import Identity
from ironcurtain.session.workspace import WorkspaceError, check, owner

POLICY = Path(__file__).resolve().parents[3] / "policy" / "policy.yaml"


def _variables(root: Path) -> dict[str, str]:
    state = root / "state"
    return {
        "policy_dir": str(POLICY.parent),
        "audit_dir": str(state / "sessions/s/audit"),
        "state_dir": str(state),
        "ca_dir": str(state / "ca"),
        "secrets_dir": str(state / "sessions/s/secrets"),
    }


def test_a_workspace_holding_the_state_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="contains protected paths"):
        check(tmp_path, POLICY, _variables(tmp_path))


def test_a_project_folder_beside_the_state_is_accepted(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    os.chown(project, 4242, 4242)
    assert check(project, POLICY, _variables(tmp_path)) == project.resolve()


def test_a_missing_workspace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="not a directory"):
        check(tmp_path / "nope", POLICY, _variables(tmp_path))


def test_the_workspace_owner_is_the_agent(tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    folder.mkdir(mode=0o700)
    os.chown(folder, 4242, 4343)
    assert owner(folder) == Identity(4242, 4343)


@pytest.mark.parametrize(("uid", "gid"), [(0, 0), (0, 4343), (4242, 0)])
def test_a_workspace_of_root_is_refused_with_the_way_out(
    tmp_path: Path, uid: int, gid: int
) -> None:
    folder = tmp_path / "ws"
    folder.mkdir(mode=0o777)
    os.chown(folder, uid, gid)
    with pytest.raises(WorkspaceError, match=r"never as root.*sudo chown -R USER:GROUP"):
        owner(folder)


@pytest.mark.parametrize("mode", [0o500, 0o600, 0o077])
def test_a_workspace_its_owner_cannot_write_is_refused(tmp_path: Path, mode: int) -> None:
    folder = tmp_path / "ws"
    folder.mkdir()
    os.chown(folder, 4242, 4242)
    folder.chmod(mode)
    with pytest.raises(WorkspaceError, match="chmod u\\+rwx"):
        owner(folder)


def test_without_root_the_workspace_must_be_the_callers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user cannot give the session's files away: another owner's containers could not use them.
    folder = tmp_path / "ws"
    folder.mkdir()
    os.chown(folder, 4242, 4242)
    monkeypatch.setattr(workspace, "is_root", lambda: False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(WorkspaceError, match=r"belongs to uid 4242, not to you \(uid 1000\)"):
        owner(folder)
    monkeypatch.setattr(os, "geteuid", lambda: 4242)
    assert owner(folder) == Identity(4242, 4242)  # control: the caller's own folder


def test_the_mitm_runs_as_the_caller_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workspace, "is_root", lambda: True)
    assert run.mitm_user() == "10001:10001"
    monkeypatch.setattr(workspace, "is_root", lambda: False)
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    monkeypatch.setattr(os, "getgid", lambda: 1001)
    assert run.mitm_user() == "1000:1001"
