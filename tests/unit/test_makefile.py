"""The Makefile's own decisions, seen with `make -n` (prints the recipes, runs nothing)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"WORKSPACE", "TASK", "MAKEFLAGS"}}
    return subprocess.run(
        ["make", "-n", "-C", str(REPO), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize("extra", [(), ("WORKSPACE=",), ("WORKSPACE=  ",)])
def test_up_without_a_workspace_is_refused_saying_how(extra: tuple[str, ...]) -> None:
    result = _make("up", 'TASK="fix the failing test"', *extra)
    assert result.returncode != 0
    assert "say which folder the agent works on: make up WORKSPACE=" in result.stderr
    assert "ironcurtain run" not in result.stdout  # refused before anything runs


def test_up_with_a_workspace_says_which_and_passes_it_on(tmp_path: Path) -> None:
    result = _make("up", f"WORKSPACE={tmp_path}", "TASK=fix it")
    assert result.returncode == 0, result.stderr
    assert f"up: workspace {tmp_path}" in result.stdout
    assert f'--workspace "{tmp_path}"' in result.stdout
    assert '--task "fix it"' in result.stdout


def test_other_targets_need_no_workspace() -> None:
    assert _make("lint").returncode == 0


def test_make_takes_the_base_image_from_the_one_settings_loader() -> None:
    result = _make("base")
    assert result.returncode == 0, result.stderr
    assert "ironcurtain settings BASE_IMAGE" in result.stdout
    makefile = (REPO / "Makefile").read_text()
    assert "include .env" not in makefile  # make reading .env itself would shadow the user config


def test_lint_runs_the_import_contracts_and_the_type_checker() -> None:
    result = _make("lint")
    assert result.returncode == 0, result.stderr
    for tool in ("ruff check .", "ruff format --check .", "lint-imports", "mypy"):
        assert tool in result.stdout
