"""Builds every `docker compose` command line of a session and runs it (the interactive `exec` on
terminal.py's pty); the team stack's compose is shared/command.py's."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .terminal import Relay


class ComposeError(RuntimeError):
    """A compose command failed; the message carries what it printed."""


def missing() -> str | None:
    """Why `docker compose` does not run for this user (None when it does): without the v2
    plugin the docker CLI prints its whole help, which would explain nothing."""
    try:
        done = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    return f"`docker compose version` exited {done.returncode}"


@dataclass(frozen=True, slots=True)
class Compose:
    project: str
    files: tuple[Path, ...] = ()  # none: act on the project by its labels (down, ps)
    env: Mapping[str, str] = field(default_factory=dict)  # interpolation variables
    cwd: Path | None = None

    def _argv(self, *args: str) -> list[str]:
        argv = ["docker", "compose", "--project-name", self.project]
        for f in self.files:
            argv += ["--file", str(f)]
        return [*argv, *args]

    def _environ(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def _check(self, *args: str, timeout_s: float) -> str:
        try:
            done = subprocess.run(
                self._argv(*args),
                cwd=self.cwd,
                env=self._environ(),
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ComposeError(
                f"docker compose {args[0]} took longer than {timeout_s:.0f}s"
            ) from exc
        if done.returncode != 0:
            raise ComposeError(
                f"docker compose {' '.join(args[:2])} failed ({done.returncode}):\n"
                f"{(done.stderr or done.stdout).strip()[-2000:]}"
            )
        return done.stdout

    def up(
        self,
        services: Sequence[str] = (),
        timeout_s: float = 120,
        wait: bool = True,
        later: Sequence[str] = (),
    ) -> None:
        """Start services (all when none are named) except those in `later`; with `wait`, until
        each is healthy (compose's own --wait)."""
        waiting = ["--wait", "--wait-timeout", str(int(timeout_s))] if wait else []
        held = [arg for name in later for arg in ("--scale", f"{name}=0")]
        self._check("up", "--detach", *waiting, *held, *services, timeout_s=timeout_s + 30)

    def down(self, timeout_s: float = 60) -> None:
        """Stop and remove every container, network and volume of the project."""
        self._check("down", "--volumes", "--remove-orphans", "--timeout", "3", timeout_s=timeout_s)

    def exec(self, service: str, argv: Sequence[str], timeout_s: float = 30) -> str:
        return self._check("exec", "-T", service, *argv, timeout_s=timeout_s)

    def exec_process(self, service: str, argv: Sequence[str]) -> subprocess.Popen[str]:
        """Start `argv` in the running `service` container; output (both streams) as lines.

        The caller reads `stdout`, waits, and may kill it (a proxy died, a signal came).
        """
        return subprocess.Popen(
            self._argv("exec", "-T", service, *argv),
            cwd=self.cwd,
            env=self._environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )

    def exec_terminal(self, service: str, argv: Sequence[str], relay: Relay) -> int:
        """`argv` in the running `service` container on a tty, relayed to the user's terminal
        through `relay`'s pty (resizes and notices); its exit code."""
        return relay.run(self._argv("exec", service, *argv), env=self._environ(), cwd=self.cwd)

    def logs(self, service: str = "", timeout_s: float = 30, tail: int = 0) -> str:
        extra = [f"--tail={tail}"] if tail else []
        return self._check(
            "logs", "--no-color", *extra, *([service] if service else []), timeout_s=timeout_s
        )
