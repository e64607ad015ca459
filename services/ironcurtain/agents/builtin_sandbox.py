"""Run one `execute_code` program in a fresh interpreter, time- and memory-limited.

The agent container is the sandbox (no network but the doors, no secret, the workspace only);
this adds what a model's program needs on top: a new process group per program (killed whole
when it overruns), a time limit on the program's *own* time (time blocked in a tool call, such
as an escalation waiting for a human, does not count: builtin_child reports those on a pipe),
a hard deadline that counts everything (the session's wall-clock budget), an address-space and
CPU limit, and stdout/stderr captured up to a bound (the rest is drained and counted).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

CHILD = "ironcurtain.agents.builtin_child"
# Not passed to programs: a program has no business calling the model behind the loop's back
# (the MITM would still meter it; its budgets stay the outer wall).
HIDDEN_ENV = ("IRONCURTAIN_ANTHROPIC_FAKE_KEY",)
DRAIN_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class Limits:
    seconds: float = 60.0  # the program's own time (not time waiting in tool calls)
    memory_bytes: int = 1 << 30  # address space
    output_chars: int = 20_000  # of stdout and of stderr, each


@dataclass(frozen=True, slots=True)
class RunResult:
    exit_code: int | None  # None: killed by us (see `stopped`)
    stdout: str
    stderr: str
    stopped: str | None = None  # "time limit" or "deadline" when we killed it
    duration_s: float = 0.0


class _Capture:
    """Reads a pipe to its end, keeping the first `limit` bytes and counting the rest."""

    def __init__(self, pipe: IO[bytes], limit: int) -> None:
        self.pipe, self.limit = pipe, limit
        self.kept = bytearray()
        self.dropped = 0
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while chunk := self.pipe.read1(DRAIN_CHUNK):  # type: ignore[attr-defined]
            room = self.limit - len(self.kept)
            self.kept += chunk[: max(room, 0)]
            self.dropped += max(len(chunk) - max(room, 0), 0)

    def text(self) -> str:
        self.thread.join(timeout=5)  # a daemonized grandchild may hold the pipe: do not hang
        shown = self.kept.decode("utf-8", "replace")
        if self.dropped:
            shown += f"\n[... {self.dropped} more bytes not shown]"
        return shown


def _watch(
    status_fd: int, own_limit_s: float, deadline: float | None, clock: Callable[[], float]
) -> tuple[str | None, float | None]:
    """Wait until the status pipe closes (the program ends): the limit it overran, if any, else
    None and the seconds it has left (None: no limit)."""
    in_call = False
    own_used = 0.0
    mark = clock()
    while True:
        now = clock()
        if not in_call:
            own_used += now - mark
        mark = now
        if deadline is not None and now >= deadline:
            return "deadline", 0.0
        if own_used >= own_limit_s:
            return "time limit", 0.0
        waits = [] if deadline is None else [deadline - now]
        if not in_call:
            waits.append(own_limit_s - own_used)
        ready, _, _ = select.select([status_fd], [], [], min(waits) if waits else None)
        if not ready:
            continue
        data = os.read(status_fd, 4096)
        now = clock()  # the time until now is charged in the state it was spent in
        if not in_call:
            own_used += now - mark
        mark = now
        if not data:
            return None, min(waits) if waits else None
        for byte in data:
            if byte in b"[]":
                in_call = byte == ord("[")


def run(
    code: str,
    stubs_source: str,
    mcp_url: str,
    limits: Limits = Limits(),
    *,
    deadline: float | None = None,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RunResult:
    """Run `code` to its end or to a limit; `deadline` is on `clock` (monotonic seconds)."""
    began = clock()
    env = {k: v for k, v in (os.environ if environ is None else environ).items()}
    for name in HIDDEN_ENV:
        env.pop(name, None)
    with tempfile.TemporaryDirectory(prefix="ic-code-") as tmp:
        folder = Path(tmp)
        status_r, status_w = os.pipe()
        try:
            (folder / "stubs.py").write_text(stubs_source)
            (folder / "program.py").write_text(code)
            cpu_s = max(1, int(limits.seconds) + 1)  # a backstop; the watch comes first
            argv = [str(folder), str(limits.memory_bytes), str(cpu_s), str(status_w), mcp_url]
            proc = subprocess.Popen(
                [sys.executable, "-I", "-m", CHILD, *argv],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(status_w,),
                start_new_session=True,  # its own process group: killed whole
                cwd=cwd,
                env=env,
            )
            os.close(status_w)
            status_w = -1
            assert proc.stdout is not None
            assert proc.stderr is not None
            out = _Capture(proc.stdout, limits.output_chars)
            err = _Capture(proc.stderr, limits.output_chars)
            stopped: str | None = "error"
            try:
                stopped, left = _watch(status_r, limits.seconds, deadline, clock)
                if stopped is None:  # ended, or closed the pipe itself: still bounded
                    try:
                        proc.wait(timeout=left)
                    except subprocess.TimeoutExpired:
                        stopped = "time limit"
            finally:
                if stopped is not None:
                    _kill_group(proc.pid)
                exit_code = proc.wait()
                _kill_group(proc.pid)  # what it left running in its group
            result = RunResult(
                exit_code=None if stopped else exit_code,
                stdout=out.text(),
                stderr=err.text(),
                stopped=stopped,
                duration_s=round(clock() - began, 3),
            )
            proc.stdout.close()
            proc.stderr.close()
            return result
        finally:
            os.close(status_r)
            if status_w >= 0:
                os.close(status_w)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
