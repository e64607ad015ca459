"""Relay tests' harness: a relay host process (relayhost.py) whose controlling terminal is a pty
the test owns, running a child (by default ttychild.py) on the relay's own pty."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from ironcurtain.session.terminal import set_window_size, with_controlling_tty

HERE = Path(__file__).parent
SERVICES = HERE.parents[2] / "services"
CHILD = (sys.executable, str(HERE / "ttychild.py"))
DEADLINE_S = 20.0


@dataclass
class Host:
    """The relay host process, and this test's side of its (the user's) terminal."""

    proc: subprocess.Popen[bytes]
    master: int
    slave: int
    notices: int
    seen: bytearray = field(default_factory=bytearray)
    cursor: int = 0

    def expect(self, pattern: bytes) -> re.Match[bytes]:
        """Wait (bounded) until the terminal shows `pattern` past what was matched before."""
        wanted = re.compile(pattern, re.DOTALL)
        deadline = time.monotonic() + DEADLINE_S
        while (found := wanted.search(self.seen, self.cursor)) is None:
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} in {bytes(self.seen[self.cursor :])!r}"
            self._pump(left)
        self.cursor = found.end()
        return found

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def send_resize(self, rows: int, cols: int) -> None:
        set_window_size(self.master, rows, cols)  # the kernel sends the relay SIGWINCH

    def hang_up(self) -> None:
        """Close the terminal as a closed window does (the kernel hangs up its session)."""
        for fd in (self.master, self.slave):
            os.close(fd)
        self.master = self.slave = -1

    def notice(self, line: str) -> None:
        os.write(self.notices, line.encode() + b"\n")

    def wait(self) -> int:
        deadline = time.monotonic() + DEADLINE_S
        while self.proc.poll() is None:
            left = deadline - time.monotonic()
            assert left > 0, f"the relay did not end: {bytes(self.seen)!r}"
            self._pump(min(left, 0.2))
        while self.master >= 0 and self._pump(0):  # what it wrote last may still be buffered
            pass
        return self.proc.returncode

    def _pump(self, timeout_s: float) -> bool:
        """Whether bytes came."""
        ready, _, _ = select.select([self.master], [], [], timeout_s)
        if ready:
            with suppress(OSError):  # EIO: the relay's side closed
                data = os.read(self.master, 65536)
                self.seen += data
                return bool(data)
        return False


@contextmanager
def relay_host(
    hold_s: float = 5.0, rows: int = 24, cols: int = 80, child: Sequence[str] = CHILD
) -> Iterator[Host]:
    """relayhost.py running `child`, on a pty this test owns (its controlling terminal)."""
    master, slave = os.openpty()
    set_window_size(master, rows, cols)
    notices_r, notices_w = os.pipe()
    argv = [sys.executable, str(HERE / "relayhost.py"), str(notices_r), str(hold_s)]
    argv += child
    proc = subprocess.Popen(
        with_controlling_tty(argv),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        pass_fds=(notices_r,),
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(SERVICES)},
    )
    os.close(notices_r)
    host = Host(proc, master, slave, notices_w)
    try:
        yield host
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for fd in (host.master, host.slave, notices_w):
            if fd >= 0:
                os.close(fd)
