"""A joined machine's team files: refused when they could leak the token or downgrade Redis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ironcurtain.registrar.client import Registrar, RegistrarError, Team


def write_team(directory: Path, redis_url: str, token_mode: int = 0o600) -> Team:
    team = Team(directory)
    directory.mkdir()
    team.settings.write_text(json.dumps({"registrar": "https://t:8443", "redis_url": redis_url}))
    team.token_file.write_text("a" * 43 + "\n")
    team.token_file.chmod(token_mode)
    return team


def test_a_joined_machines_files_load(tmp_path: Path) -> None:
    registrar, redis_url = write_team(tmp_path / "team", "rediss://t:6379/0").load()
    assert redis_url == "rediss://t:6379/0"
    assert registrar.url == "https://t:8443"
    assert registrar.token == "a" * 43


def test_a_token_readable_by_others_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PermissionError, match="readable by others"):
        write_team(tmp_path / "team", "rediss://t:6379/0", 0o644).load()


def test_a_plaintext_redis_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="plaintext Redis is refused"):
        write_team(tmp_path / "team", "redis://t:6379/0").load()


def test_the_registrar_is_https_only_and_never_without_the_ca(tmp_path: Path) -> None:
    with pytest.raises(RegistrarError, match="must be https"):
        Registrar("http://t:8443", tmp_path / "ca.pem", "x").team()
    with pytest.raises(RegistrarError, match="team CA"):
        Registrar("https://t:8443", tmp_path / "missing.pem", "x").team()
