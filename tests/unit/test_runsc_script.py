"""scripts/runsc.sh edits only an engine IronCurtain started: with a `docker` on PATH that lists
no runsc and no dockerd of ours in the state folder, it says so and leaves daemon.json as it was.
Docker-free: a stub `docker` answers `docker info`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "runsc.sh"


def _run(
    tmp_path: Path, runtimes: str, **extra: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(f"#!/bin/sh\necho '{runtimes}'\n")
    docker.chmod(0o755)
    daemon = tmp_path / "daemon.json"
    daemon.write_text('{"log-level": "warn"}\n')
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "IRONCURTAIN_STATE_DIR": str(tmp_path / "state"),
        "DOCKER_DAEMON_JSON": str(daemon),
        **extra,
    }
    done = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    return done, daemon


def test_an_engine_we_did_not_start_is_left_untouched_and_told_how(tmp_path: Path) -> None:
    done, daemon = _run(tmp_path, '{"runc":{"path":"runc"}}')
    assert done.returncode == 0, done.stderr
    assert "is not one IronCurtain started" in done.stdout
    assert daemon.read_text() == '{"log-level": "warn"}\n'
    assert not (tmp_path / "state").exists()


def test_a_pid_file_that_is_not_our_running_dockerd_does_not_make_the_engine_ours(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "dockerd.pid").write_text(f"{os.getpid()}\n")  # alive, but not dockerd
    done, daemon = _run(tmp_path, '{"runc":{"path":"runc"}}')
    assert done.returncode == 0, done.stderr
    assert "left untouched" in done.stdout
    assert daemon.read_text() == '{"log-level": "warn"}\n'


def test_control_an_engine_that_lists_runsc_needs_nothing(tmp_path: Path) -> None:
    done, daemon = _run(tmp_path, '{"runc":{},"runsc":{"path":"/usr/bin/runsc"}}')
    assert (done.returncode, done.stdout) == (0, "")
    assert daemon.read_text() == '{"log-level": "warn"}\n'


def test_runc_chosen_skips_it_all(tmp_path: Path) -> None:
    done, _ = _run(tmp_path, "{}", IRONCURTAIN_RUNTIME="runc")
    assert (done.returncode, done.stdout) == (0, "")
