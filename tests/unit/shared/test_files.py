"""The shared stack's secret files: made 0600 under a 0700 directory, never overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironcurtain.shared.files import SharedFiles


def test_missing_secrets_are_made_private_and_kept(tmp_path: Path) -> None:
    files = SharedFiles(tmp_path / "shared")
    files.ensure(say=lambda _: None)
    password = files.redis_password.read_text()
    token = files.approval_token.read_text()
    assert files.directory.stat().st_mode & 0o777 == 0o700
    for path in (files.redis_password, files.approval_token):
        assert path.stat().st_mode & 0o777 == 0o600
    files.ensure(say=lambda _: None)
    assert (files.redis_password.read_text(), files.approval_token.read_text()) == (password, token)


def test_a_secret_readable_by_others_is_refused(tmp_path: Path) -> None:
    files = SharedFiles(tmp_path / "shared")
    files.ensure(say=lambda _: None)
    files.redis_password.chmod(0o644)
    with pytest.raises(PermissionError, match="readable by others"):
        files.ensure(say=lambda _: None)
