"""The workspace checks: protected paths inside it, and whether the agent's uid can write it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ironcurtain.session.workspace import WorkspaceError, check, proxy_uid, writable_by

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
    project.chmod(0o777)
    assert check(project, POLICY, _variables(tmp_path)) == project.resolve()


def test_a_missing_workspace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="not a directory"):
        check(tmp_path / "nope", POLICY, _variables(tmp_path))


@pytest.mark.parametrize(
    ("mode", "owned", "ok"),
    [(0o700, True, True), (0o500, True, False), (0o755, False, False), (0o777, False, True)],
)
def test_writable_by_the_agent_uid(tmp_path: Path, mode: int, owned: bool, ok: bool) -> None:
    folder = tmp_path / "ws"
    folder.mkdir()
    folder.chmod(mode)
    uid = os.geteuid() if owned else 54321
    if ok:
        writable_by(folder, uid)
    else:
        with pytest.raises(WorkspaceError, match=f"chown -R {uid}:{uid}"):
            writable_by(folder, uid)


def test_the_mcp_proxy_never_runs_as_root(tmp_path: Path) -> None:
    owner = tmp_path.stat().st_uid
    assert proxy_uid(tmp_path) == (owner if owner else 10001)
