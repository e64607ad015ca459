"""`ironcurtain run --pty` end to end: the user's terminal is a pty this test owns.

The scripted agent's REPL runs in the real agent container through `docker compose exec` on the
relay's pty. The test checks the prompt, that a resize of its terminal reaches the container's
tty, that an escalated MCP call shows its notice as a whole line in the terminal, that approving
it with `ironcurtain approve` lets the call finish, and that `exit` tears the session down
(exit 0, nothing left, the terminal's mode as before).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import select
import signal
import subprocess
import sys
import termios
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import docker

from ironcurtain.session.terminal import set_window_size, with_controlling_tty

from ..conftest import REPO_ROOT
from .conftest import Env, cli
from .test_run import assert_nothing_left, session_dir

START_S = 240.0  # images are built; compose up and the isolation check
STEP_S = 60.0
NOTICE = (
    rb"\r\n\x07\[ironcurtain\] escalation ([0-9a-f]+\.[0-9a-f]{16}): "
    rb"filesystem__move_file[^\r\n]*\r\n"
)


@dataclass
class Terminal:
    """This test's side of the user's terminal."""

    proc: subprocess.Popen[bytes]
    master: int
    seen: bytearray = field(default_factory=bytearray)
    cursor: int = 0

    def expect(self, pattern: bytes, within_s: float = STEP_S) -> re.Match[bytes]:
        wanted = re.compile(pattern, re.DOTALL)
        deadline = time.monotonic() + within_s
        while (found := wanted.search(self.seen, self.cursor)) is None:
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} after:\n{self.text(self.cursor)}"
            assert self.proc.poll() is None or self._pump(0), f"run ended:\n{self.text(0)}"
            self._pump(min(left, 1.0))
        self.cursor = found.end()
        return found

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait(self, within_s: float = 120.0) -> int:
        deadline = time.monotonic() + within_s
        while self.proc.poll() is None:
            left = deadline - time.monotonic()
            assert left > 0, f"run did not end:\n{self.text(0)}"
            self._pump(min(left, 0.5))
        while self._pump(0):
            pass
        return self.proc.returncode

    def text(self, start: int) -> str:
        return bytes(self.seen[start:]).decode("utf-8", "replace")

    def _pump(self, timeout_s: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout_s)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: nothing holds the terminal any more
            return False
        self.seen += data
        return bool(data)


def start(env: Env, workspace: Path, session_id: str) -> tuple[Terminal, int]:
    """`ironcurtain run --pty` with a new pty (24x80) as its controlling terminal."""
    args = env.run_args(
        "--agent", "scripted", "--pty", "--workspace", str(workspace),
        "--session-id", session_id, "--escalation-timeout", "120",
    )  # fmt: skip
    return start_on_pty(env, args, 24, 80)


def start_on_pty(env: Env, args: list[str], rows: int, cols: int) -> tuple[Terminal, int]:
    """`ironcurtain ARGS` with a new rows x cols pty as its controlling terminal."""
    master, slave = os.openpty()
    set_window_size(master, rows, cols)
    proc = subprocess.Popen(
        with_controlling_tty([sys.executable, "-m", "ironcurtain.cli", *args]),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=REPO_ROOT,
        env=env.environ,
        start_new_session=True,
    )
    return Terminal(proc, master), slave


def stop(proc: subprocess.Popen[bytes]) -> None:
    """After a failed step: SIGTERM tears the session down."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=90)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_an_interactive_session_resizes_shows_escalations_and_tears_down_on_exit(
    session_env: Env, workspace: Path, docker_client: docker.DockerClient
) -> None:
    session_id = secrets.token_hex(4)
    term, slave = start(session_env, workspace, session_id)
    proc, master = term.proc, term.master
    before = termios.tcgetattr(slave)
    try:
        term.expect(rb"scripted> ", within_s=START_S)
        term.send("size\r")
        term.expect(rb"size 24x80\r\n")

        # The user's window changes: the container's tty follows (docker exec resizes it).
        set_window_size(master, 40, 132)
        term.expect(rb"window 40x132\r\n")
        term.send("size\r")
        term.expect(rb"size 40x132\r\n")

        # A move deletes its source: the default policy escalates it; the notice is a whole line.
        call = {"source": "/workspace/old.txt", "destination": "/workspace/new.txt"}
        term.send(f"call filesystem__move_file {json.dumps(call)}\r")
        found = term.expect(NOTICE)
        escalation = found.group(1).decode()
        assert b" on /workspace/old.txt, /workspace/new.txt (rule " in found.group(0)
        assert f"`ironcurtain approve {escalation}`".encode() in found.group(0)
        assert not (workspace / "new.txt").exists()  # waiting for a human
        token = session_env.shared_dir / "approval_token"
        url = f"http://127.0.0.1:{session_env.environ['IRONCURTAIN_APPROVAL_PORT']}"
        approved = cli(
            session_env, "approve", escalation, "--yes", "--url", url, "--token-file", str(token),
            "--reason", "the interactive test approves", timeout_s=30,
        )  # fmt: skip
        assert approved.returncode == 0, approved.stdout + approved.stderr
        term.expect(rb"result ok: ")
        assert (workspace / "new.txt").read_text() == "to be moved\n"

        term.send("exit\r")
        code = term.wait()
    finally:
        stop(proc)
        after = termios.tcgetattr(slave)
        os.close(master)
        os.close(slave)
    assert code == 0, term.text(0)
    assert "run: exit 0" in term.text(0)
    assert after == before  # the relay put the terminal back as it found it
    assert_nothing_left(session_env, docker_client, session_id)
    summary = json.loads((session_dir(session_env, session_id) / "summary.json").read_text())
    assert summary["outcome"] == "ok"
    assert summary["task"] == "(interactive)"
    assert summary["tools"]["escalated"] == 1
    assert summary["tools"]["approved"] == 1


def test_closing_the_terminal_mid_session_tears_everything_down(
    session_env: Env, workspace: Path, docker_client: docker.DockerClient
) -> None:
    session_id = secrets.token_hex(4)
    term, slave = start(session_env, workspace, session_id)
    try:
        term.expect(rb"scripted> ", within_s=START_S)
    except BaseException:
        stop(term.proc)
        raise
    finally:
        os.close(term.master)  # the window closes: the kernel hangs up the session (SIGHUP)
        os.close(slave)
    try:
        code = term.proc.wait(timeout=120)
    finally:
        stop(term.proc)
    assert code == 130
    assert_nothing_left(session_env, docker_client, session_id)
    summary = json.loads((session_dir(session_env, session_id) / "summary.json").read_text())
    assert summary["outcome"].startswith("interrupted"), summary["outcome"]
