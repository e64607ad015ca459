"""`ironcurtain run` / `make up` argument handling that needs no Docker."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ironcurtain.cli import main
from ironcurtain.session.compose import Compose

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("argv", [["run"], ["run", "--pty"]])
def test_interactive_mode_without_a_terminal_is_refused(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2  # pytest's stdin is not a terminal
    assert "needs a terminal on stdin and stdout" in capsys.readouterr().out


def test_pty_with_a_task_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--pty", "--task", "x"]) == 2
    assert "--pty opens an interactive session" in capsys.readouterr().out


def test_the_task_is_given_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "fix it", "--task", "fix it"]) == 2
    assert "give the task once" in capsys.readouterr().out


def test_a_positional_task_is_the_task(capsys: pytest.CaptureFixture[str]) -> None:
    # Reaches the upstream parser, so the positional task counted as one (no terminal needed).
    assert main(["run", "fix the failing test", "--pty"]) == 2
    assert "--pty opens an interactive session" in capsys.readouterr().out


def test_a_malformed_upstream_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--task", "x", "--upstream", "nonsense"]) == 2
    assert "HOST=ADDRESS:PORT" in capsys.readouterr().out


def _make_up(*variables: str) -> str:
    done = subprocess.run(
        ["make", "-n", "-s", "up", *variables],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    joined = done.stdout.replace("\\\n", " ")
    return next(line for line in joined.splitlines() if "ironcurtain run" in line)


def test_make_up_passes_the_task_workspace_and_agent() -> None:
    line = _make_up("TASK=fix the test", "WORKSPACE=/srv/app", "AGENT=codex")
    assert '--workspace "/srv/app"' in line
    assert '--agent "codex"' in line
    assert '--task "fix the test"' in line


def test_make_up_passes_a_sibling_services_file_only_when_given() -> None:
    given = _make_up("WORKSPACE=/srv/app", "SIBLINGS=/etc/team/siblings.yaml")
    assert '--siblings "/etc/team/siblings.yaml"' in given
    assert "--siblings" not in _make_up("WORKSPACE=/srv/app")


def test_make_up_without_a_task_is_interactive_on_the_given_workspace() -> None:
    # The checkout itself is never the default (it is refused: protected paths);
    # tests/unit/test_makefile.py checks that make up without WORKSPACE stops, saying how.
    line = _make_up("WORKSPACE=/srv/app")
    assert "--task" not in line
    assert line.rstrip().endswith("--pty")
    assert '--workspace "/srv/app"' in line


def test_interactive_exec_gets_a_terminal_and_one_shot_exec_does_not() -> None:
    compose = Compose("ic-x-0123abcd")
    assert compose._argv("exec", "agent", "claude") == [
        "docker", "compose", "--project-name", "ic-x-0123abcd", "exec", "agent", "claude",
    ]  # fmt: skip
    assert "-T" in compose._argv("exec", "-T", "agent", "claude")


class RecordingRelay:
    def __init__(self) -> None:
        self.calls: list[tuple[list[str], Path | None]] = []

    def run(self, argv: list[str], env: dict[str, str], cwd: Path | None) -> int:
        self.calls.append((list(argv), cwd))
        return 5


def test_a_terminal_session_runs_exec_with_a_tty_through_the_relay() -> None:
    relay = RecordingRelay()
    compose = Compose("ic-x-0123abcd", cwd=REPO)
    assert compose.exec_terminal("agent", ["claude"], relay) == 5  # type: ignore[arg-type]
    assert relay.calls == [
        (["docker", "compose", "--project-name", "ic-x-0123abcd", "exec", "agent", "claude"], REPO)
    ]
