"""The approval token file: made once 0600 and shown once; short tokens refused; compared safely."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironcurtain.people.tokens import TokenError, load_or_create


def test_a_missing_token_is_generated_private_and_shown_once(tmp_path: Path) -> None:
    shown: list[str] = []
    path = tmp_path / "state" / "approval_token"
    token = load_or_create(path, say=shown.append)
    assert len(token) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert any(token in line for line in shown)
    shown.clear()
    assert load_or_create(path, say=shown.append) == token
    assert shown == []


def test_a_short_token_in_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "approval_token"
    path.write_text("short\n")
    with pytest.raises(TokenError, match="shorter"):
        load_or_create(path)
