"""Nothing is written without a yes; a yes writes atomically and keeps the file's mode."""

from __future__ import annotations

import io
from pathlib import Path

from ironcurtain.english.accept import offer


def test_without_acceptance_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("a: 1\n")
    out = io.StringIO()
    assert not offer(path, "a: 1\n", "a: 2\n", accept=False, confirm=lambda: False, out=out)
    assert path.read_text() == "a: 1\n"
    assert "-a: 1\n+a: 2\n" in out.getvalue()
    assert "not written" in out.getvalue()


def test_a_yes_writes_the_proposal_with_the_same_mode(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("a: 1\n")
    path.chmod(0o640)
    assert offer(path, "a: 1\n", "a: 2\n", accept=False, confirm=lambda: True, out=io.StringIO())
    assert path.read_text() == "a: 2\n"
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["policy.yaml"]


def test_no_change_asks_nothing(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("a: 1\n")

    def never() -> bool:
        raise AssertionError("asked")

    out = io.StringIO()
    assert offer(path, "a: 1\n", "a: 1\n", accept=False, confirm=never, out=out)
    assert "no change" in out.getvalue()
