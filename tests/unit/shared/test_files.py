"""The shared stack's secret files: made 0600 under a 0700 directory, never overwritten; the ACL
file Redis starts with holds password hashes only and turns the default user off."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironcurtain.escalation import acl
from ironcurtain.shared.files import SharedFiles

from ..racers import race

CREDENTIALS = ("redis_admin", "redis_approval", "redis_worker")


def test_missing_secrets_are_made_private_and_kept(tmp_path: Path) -> None:
    files = SharedFiles(tmp_path / "shared")
    files.ensure(say=lambda _: None)
    before = {
        name: (files.directory / name).read_text() for name in (*CREDENTIALS, "approval_token")
    }
    assert files.directory.stat().st_mode & 0o777 == 0o700
    for name in (*CREDENTIALS, "approval_token", "redis_acl"):
        assert (files.directory / name).stat().st_mode & 0o777 == 0o600
    files.ensure(say=lambda _: None)
    assert {name: (files.directory / name).read_text() for name in before} == before


def test_each_service_has_its_own_user_and_the_acl_file_holds_no_password(tmp_path: Path) -> None:
    files = SharedFiles(tmp_path / "shared")
    files.ensure(say=lambda _: None)
    credentials = [acl.Credential.parse((files.directory / n).read_text()) for n in CREDENTIALS]
    assert [c.user for c in credentials] == [acl.ADMIN, acl.APPROVAL, acl.WORKER]
    assert len({c.password for c in credentials}) == 3
    text = files.redis_acl.read_text()
    assert text.splitlines()[0].startswith("user default off")
    assert ">" not in text
    for credential in credentials:
        assert credential.password not in text


def test_a_secret_readable_by_others_is_refused(tmp_path: Path) -> None:
    files = SharedFiles(tmp_path / "shared")
    files.ensure(say=lambda _: None)
    files.redis_admin.chmod(0o644)
    with pytest.raises(PermissionError, match="readable by others"):
        files.ensure(say=lambda _: None)


def test_sessions_starting_together_share_one_set_of_credentials(tmp_path: Path) -> None:
    results = race(
        "from pathlib import Path\nfrom ironcurtain.shared.files import SharedFiles",
        f"files = SharedFiles(Path({str(tmp_path / 'shared')!r}))\n"
        "files.ensure(say=lambda _: None)\n"
        "result = [(files.directory / n).read_text() for n in "
        "('redis_admin', 'redis_approval', 'redis_worker', 'approval_token', 'redis_acl')]",
    )
    assert all(isinstance(r, list) for r in results), results  # nobody failed
    assert len({tuple(r) for r in results}) == 1  # type: ignore[arg-type]
    assert sorted(
        p.name for p in (tmp_path / "shared").iterdir() if not p.name.startswith(".")
    ) == [
        "approval_token",
        "notify",
        "people",
        "redis_acl",
        "redis_admin",
        "redis_approval",
        "redis_worker",
        "tls",
    ]


def test_the_first_start_makes_the_member_admin_holding_the_token_file(tmp_path: Path) -> None:
    files = SharedFiles(tmp_path / "shared")
    files.ensure(say=lambda _: None)
    members = files.members().load()
    assert set(members) == {"admin"}
    assert members["admin"].holds(files.approval_token.read_text().strip())
    assert files.approval_token.read_text().strip() not in files.members().path.read_text()
    assert files.people.stat().st_mode & 0o777 == 0o700


def test_an_old_shared_token_becomes_the_member_admin(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir(mode=0o700)
    old = "o" * 43
    (directory / "approval_token").write_text(old + "\n")
    (directory / "approval_token").chmod(0o600)
    said: list[str] = []
    files = SharedFiles(directory)
    files.ensure(say=said.append)
    assert files.members().load()["admin"].holds(old)
    assert any("the member `admin` now" in line for line in said)


def test_a_removed_admin_is_not_brought_back_by_the_next_start(tmp_path: Path) -> None:
    files = SharedFiles(tmp_path / "shared")
    files.ensure(say=lambda _: None)
    files.members().add("alice")
    files.members().remove("admin")
    files.ensure(say=lambda _: None)
    assert set(files.members().load()) == {"alice"}
