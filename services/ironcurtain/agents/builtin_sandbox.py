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

CHILD = "ironcurtain.agents.builtin_child"
# Not passed to programs: a program has no business calling the model behind the loop's back
# (the MITM would still meter it; its budgets stay the outer wall).
HIDDEN_ENV = ("IRONCURTAIN_ANTHROPIC_FAKE_KEY",)
DRAIN_CHUNK = 65536
OPEN_PIPE_WAIT_S = 2.0  # for the output's end once the program is gone
PR_SET_CHILD_SUBREAPER = 36
PR_SET_DUMPABLE = 4
ADOPT_ROUNDS = 50


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
    """Reads a pipe (a raw fd, which it closes at its end) to its end, keeping the first `limit`
    bytes and counting the rest. A process the program started in a session of its own may hold
    the pipe open: `text` waits a little for the end, then shows what came (never hangs)."""

    def __init__(self, fd: int, limit: int) -> None:
        self.fd, self.limit = fd, limit
        self.kept = bytearray()
        self.dropped = 0
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        try:
            while chunk := os.read(self.fd, DRAIN_CHUNK):
                room = max(self.limit - len(self.kept), 0)
                self.kept += chunk[:room]
                self.dropped += max(len(chunk) - room, 0)
        finally:
            os.close(self.fd)

    def text(self) -> str:
        self.thread.join(timeout=OPEN_PIPE_WAIT_S)
        shown = bytes(self.kept).decode("utf-8", "replace")
        if self.dropped:
            shown += f"\n[... {self.dropped} more bytes not shown]"
        if self.thread.is_alive():
            shown += "\n[output still open: a process the program started holds it]"
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
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-m", CHILD, *argv],
                    stdin=subprocess.DEVNULL,
                    stdout=out_w,
                    stderr=err_w,
                    pass_fds=(status_w,),
                    start_new_session=True,  # its own process group: killed whole
                    cwd=cwd,
                    env=env,
                )
            except BaseException:
                for fd in (out_r, err_r):
                    os.close(fd)
                raise
            finally:
                os.close(out_w)
                os.close(err_w)
                os.close(status_w)
                status_w = -1
            out = _Capture(out_r, limits.output_chars)
            err = _Capture(err_r, limits.output_chars)
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
                _kill_adopted()  # and, in the agent, what it started in a session of its own
            result = RunResult(
                exit_code=None if stopped else exit_code,
                stdout=out.text(),
                stderr=err.text(),
                stopped=stopped,
                duration_s=round(clock() - began, 3),
            )
            return result
        finally:
            os.close(status_r)
            if status_w >= 0:
                os.close(status_w)


_adopting = False


def adopt_orphans() -> bool:
    """Make this process the subreaper of everything it starts (Linux): a program's processes
    that left its group (`setsid`) become our children when their parent ends, and each run
    kills them. For the agent process; False where the kernel does not offer it."""
    global _adopting
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        _adopting = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        _adopting = False
    return _adopting


def guard_self() -> bool:
    """Make this process undumpable (Linux PR_SET_DUMPABLE 0): a program of the same uid can
    then neither read its memory or environment in /proc (the fake key, the loop's state) nor
    ptrace it. Programs start dumpable again (execve resets it). False where not offered."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _kill_adopted() -> None:
    """Kill and reap every child of ours: after a run, the agent has no child of its own."""
    if not _adopting:
        return
    for _ in range(ADOPT_ROUNDS):  # killing one hands its own children to us: again
        children = _children(os.getpid())
        if not children:
            return
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:  # fields: state, ppid, ...
            found.append(int(entry))
    return found


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
