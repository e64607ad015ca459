"""Interactive sessions: the agent's terminal, relayed through a pseudo-terminal of ours.

Why not hand the user's terminal straight to `docker compose exec`: escalation notices must reach
the user while the agent owns the screen. So `docker compose exec` runs on a pty we hold; we put
the user's terminal in raw mode, copy bytes both ways, copy window sizes on SIGWINCH (docker exec
then resizes the container's tty), and write notices as whole lines *between* the agent's bytes --
never inside an escape sequence or a UTF-8 character. The user's terminal mode is restored on
every exit path, and so are the screen modes the agent's interface turned on and did not turn off
(a killed full-screen client leaves mouse reports, the alternate screen, bracketed paste on).

`Splicer`, `Modes` and `safe_line` are pure (tested with Hypothesis); `Relay` does the I/O.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import os
import re
import selectors
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import tty
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType

BELL = "\a"
HOLD_S = 1.0  # a notice waits at most this long for the agent to finish an escape sequence
CHUNK = 65536
EXIT_CHECK_S = 0.2

# Makes the pty the child's controlling terminal (so SIGWINCH reaches it), then execs argv.
# A separate interpreter instead of preexec_fn: forking a threaded process to run Python is unsafe.
_CTTY = (
    "import fcntl, os, sys, termios\n"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)


class Hangup(BaseException):
    """SIGTERM or SIGHUP (when nobody else handles them) or the user's terminal went away."""

    def __init__(self, why: str, *, gone: bool = False) -> None:
        super().__init__(why)
        self.gone = gone  # the user's terminal is no more: nothing can be shown on it


def detach_stdio() -> None:
    """After the terminal went away: stdin/stdout/stderr on /dev/null, so that what is still
    printed (teardown, summary) is dropped instead of failing with EIO."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def with_controlling_tty(argv: Sequence[str]) -> list[str]:
    """argv run with its stdin (a tty) as controlling terminal; start it with a new session."""
    return [sys.executable, "-I", "-S", "-c", _CTTY, *argv]


# -- pure: what may be shown, and where ------------------------------------------------------


def safe_line(text: str) -> str:
    """One line fit for the user's terminal: controls shown as \\xNN (the text may carry an
    agent's tool arguments: no escape sequences, no fake line breaks); a leading bell kept."""
    bell = text.startswith(BELL)
    body = text[1:] if bell else text
    shown = "".join(
        f"\\x{ord(c):02x}" if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 else c for c in body
    )
    return (BELL if bell else "") + shown


def frame(line: str) -> bytes:
    return b"\r\n" + safe_line(line).encode("utf-8", "replace") + b"\r\n"


# Scanner states: text, after ESC, in a CSI sequence, in a string (OSC/DCS/APC/PM/SOS), ESC in it.
_GROUND, _ESC, _CSI, _STR, _STR_ESC = range(5)
_STRING_INTRO = frozenset(b"]P_^X")
_CAN_SUB = frozenset((0x18, 0x1A))


class Scanner:
    """Tracks whether a byte stream stands between characters and sequences (`ground`)."""

    __slots__ = ("_need", "_state")

    def __init__(self) -> None:
        self._state = _GROUND
        self._need = 0  # UTF-8 continuation bytes still to come

    @property
    def ground(self) -> bool:
        return self._state == _GROUND and self._need == 0

    def step(self, b: int) -> None:
        state = self._state
        if state == _GROUND:
            if b == 0x1B:
                self._state, self._need = _ESC, 0
            elif self._need and 0x80 <= b <= 0xBF:
                self._need -= 1
            elif 0xC2 <= b <= 0xDF:
                self._need = 1
            elif 0xE0 <= b <= 0xEF:
                self._need = 2
            elif 0xF0 <= b <= 0xF4:
                self._need = 3
            else:
                self._need = 0  # ASCII, a control, or a stray byte: nothing pending
        elif state == _ESC:
            if b == ord("["):
                self._state = _CSI
            elif b in _STRING_INTRO:
                self._state = _STR
            elif b == 0x1B:
                pass
            elif 0x20 <= b <= 0x2F:
                pass  # intermediate bytes: the final one comes
            else:
                self._state = _GROUND  # final byte, CAN/SUB or anything else ends it
        elif state == _CSI:
            if 0x40 <= b <= 0x7E or b in _CAN_SUB:
                self._state = _GROUND
            elif b == 0x1B:
                self._state = _ESC
        elif state == _STR:
            if b == 0x07 or b in _CAN_SUB:
                self._state = _GROUND
            elif b == 0x1B:
                self._state = _STR_ESC
        else:  # _STR_ESC: ESC \ ends the string; ESC anything else starts a new sequence
            self._state = _GROUND if b == ord("\\") else _ESC
            if b != ord("\\"):
                self.step(b)

    def feed(self, data: bytes) -> None:
        last_esc = data.rfind(0x1B)
        if last_esc >= 0:
            # An ESC always starts a sequence afresh (ESC \\ ends a string the same way), so
            # only the bytes from the last one on decide where the stream stands.
            self._state, self._need = _GROUND, 0
            data = data[last_esc:]
        elif self.ground:
            data = data[-4:]  # only a trailing, unfinished UTF-8 character can matter
        for b in data:
            self.step(b)


class Splicer:
    """The agent's bytes, unchanged, with notices put in at the first safe boundary."""

    def __init__(self) -> None:
        self._scan = Scanner()
        self._pending: list[bytes] = []

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def notice(self, line: str) -> bytes:
        """Bytes to write now (the notice, framed), or b"" when it must wait for a boundary."""
        self._pending.append(frame(line))
        return self._take() if self._scan.ground else b""

    def output(self, chunk: bytes) -> bytes:
        if not self._pending:
            self._scan.feed(chunk)
            return chunk
        for i, b in enumerate(chunk):
            self._scan.step(b)
            if self._scan.ground:
                rest = chunk[i + 1 :]
                self._scan.feed(rest)
                return chunk[: i + 1] + self._take() + rest
        return chunk

    def force(self) -> bytes:
        """The waiting notices, wherever the stream stands (it stalled mid-sequence)."""
        return self._take()

    def _take(self) -> bytes:
        out, self._pending = b"".join(self._pending), []
        return out


# DEC private modes that a full-screen interface (Claude Code's Ink UI: 1049, 1000/1002/1003/1006,
# 1004, 2004, 2031) turns on and a terminal keeps after the program that set them is gone. 25 (the
# cursor shown) is on by default, so it is tracked the other way round.
_SCREEN_MODES = (47, 1047, 1049)  # the alternate screen: left last, after the others are off
_OTHER_MODES = (1, 1000, 1002, 1003, 1004, 1005, 1006, 1015, 2004, 2031)
_MODE_SETS = re.compile(rb"\x1b\[\?([0-9;]*)([hl])|\x1b\[([<>])([0-9]*)u")
_UNFINISHED = re.compile(rb"\x1b(?:\[(?:[?<>][0-9;]*)?)?")
_TAIL_MAX = 32


class Modes:
    """Which terminal modes the agent's output left on, and the bytes that turn them off."""

    __slots__ = ("_hidden", "_keyboard", "_on", "_tail")

    def __init__(self) -> None:
        self._on: set[int] = set()
        self._hidden = False  # the cursor (mode 25)
        self._keyboard = 0  # kitty keyboard flags pushed (CSI > N u) and not popped (CSI < N u)
        self._tail = b""  # an unfinished sequence at the end of the last chunk

    def feed(self, data: bytes) -> None:
        data = self._tail + data
        self._tail = b""
        cut = data.rfind(0x1B)
        if cut >= 0 and len(data) - cut <= _TAIL_MAX and _UNFINISHED.fullmatch(data, cut):
            data, self._tail = data[:cut], data[cut:]
        for found in _MODE_SETS.finditer(data):
            if found.group(3) is not None:
                count = int(found.group(4) or 1)
                pushed = found.group(3) == b">"
                self._keyboard = self._keyboard + 1 if pushed else max(0, self._keyboard - count)
                continue
            on = found.group(2) == b"h"
            for part in found.group(1).split(b";"):
                mode = int(part) if part else -1
                if mode == 25:
                    self._hidden = not on
                elif mode in _SCREEN_MODES or mode in _OTHER_MODES:
                    (self._on.add if on else self._on.discard)(mode)

    def restore(self) -> bytes:
        """Bytes that put the terminal's modes back to their defaults (b"" when they are)."""
        out = [f"\x1b[?{m}l".encode() for m in _OTHER_MODES if m in self._on]
        if self._keyboard:
            out.append(f"\x1b[<{self._keyboard}u".encode())
        out += [f"\x1b[?{m}l".encode() for m in _SCREEN_MODES if m in self._on]
        if self._hidden:
            out.append(b"\x1b[?25h")
        return b"".join(out)


# -- I/O: the relay ----------------------------------------------------------------------------


def window_size(fd: int) -> tuple[int, int]:
    """(rows, columns) of a terminal."""
    rows, cols, _x, _y = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, cols


def set_window_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            with selectors.DefaultSelector() as wait:
                wait.register(fd, selectors.EVENT_WRITE)
                wait.select()


@contextmanager
def _raw(fd: int) -> Iterator[None]:
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        with suppress(termios.error):  # a terminal that hung up has no mode to restore
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class Relay:
    """Runs argv on a pty of ours, attached to the user's terminal (stdin/stdout fds)."""

    def __init__(self, stdin: int = 0, stdout: int = 1, hold_s: float = HOLD_S) -> None:
        self.stdin, self.stdout, self.hold_s = stdin, stdout, hold_s
        self._notices: collections.deque[str] = collections.deque()
        self._lock = threading.Lock()
        self._wake = (-1, -1)  # a pipe while `run` runs: notices wake its loop
        self._proc: subprocess.Popen[bytes] | None = None
        self._master = -1
        self._modes = Modes()

    def notice(self, line: str) -> None:
        """Show a line in the user's terminal (thread-safe; put between the agent's bytes)."""
        with self._lock:
            self._notices.append(line)
            if self._wake[1] >= 0:
                with suppress(BlockingIOError):  # a full pipe wakes the loop just the same
                    os.write(self._wake[1], b"!")

    def kill(self) -> None:
        """End the child (from any thread); `run` then returns its exit status."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with suppress(ProcessLookupError):
                proc.kill()

    def run(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> int:
        """The child's exit code (128 + N when signal N ended it)."""
        master, slave = os.openpty()
        wake = os.pipe()
        for fd in wake:
            os.set_blocking(fd, False)
        with self._lock:
            self._wake = wake
            if self._notices:
                os.write(wake[1], b"!")
        self._master = master
        try:
            if os.isatty(self.stdin):
                set_window_size(slave, *window_size(self.stdin))
            with _raw(self.stdin), self._signals():
                self._proc = subprocess.Popen(
                    with_controlling_tty(argv),
                    stdin=slave,
                    stdout=slave,
                    stderr=slave,
                    env=None if env is None else dict(env),
                    cwd=cwd,
                    start_new_session=True,
                    close_fds=True,
                )
                os.close(slave)
                slave = -1
                self._modes = Modes()
                try:
                    self._pump(master, wake[0], self._proc)
                finally:
                    self.kill()
                    code = self._proc.wait()
                    with suppress(OSError):  # a terminal that went away has no modes left
                        _write_all(self.stdout, self._modes.restore())
        finally:
            self._master = -1
            with self._lock:
                self._wake = (-1, -1)
            for fd in (master, slave, *wake):
                if fd >= 0:
                    os.close(fd)
        return code if code >= 0 else 128 - code

    @contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals go to the main thread only: no resize forwarding here
            return

        def hangup(signum: int, frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            raise Hangup(f"signal {name}", gone=signum == signal.SIGHUP)

        old = {signal.SIGWINCH: signal.signal(signal.SIGWINCH, lambda s, f: self._resize())}
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is signal.SIG_DFL:  # the caller's own handler wins
                old[signum] = signal.signal(signum, hangup)
        # A signal may land on another thread; Python then runs its handler only when the main
        # thread next runs code. The wakeup fd ends the loop's select() so that happens at once.
        old_wakeup = signal.set_wakeup_fd(self._wake[1], warn_on_full_buffer=False)
        try:
            yield
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in old.items():
                signal.signal(signum, handler)

    def _resize(self) -> None:
        if self._master >= 0 and os.isatty(self.stdin):
            with suppress(OSError):
                set_window_size(self._master, *window_size(self.stdin))

    def _pump(self, master: int, wake: int, proc: subprocess.Popen[bytes]) -> None:
        """Relay until the child exits (its pidfd becomes readable)."""
        os.set_blocking(master, False)
        splice = Splicer()
        to_child = bytearray()
        held_since = 0.0
        # Without pidfds (not Linux >= 5.3) the loop looks at the child every EXIT_CHECK_S.
        pidfd = os.pidfd_open(proc.pid) if hasattr(os, "pidfd_open") else -1
        with selectors.DefaultSelector() as sel:
            sel.register(master, selectors.EVENT_READ, "pty")
            sel.register(self.stdin, selectors.EVENT_READ, "user")
            sel.register(wake, selectors.EVENT_READ, "notice")
            if pidfd >= 0:
                sel.register(pidfd, selectors.EVENT_READ, "exit")
            pty_open = True
            try:
                while True:
                    timeout = None if pidfd >= 0 else EXIT_CHECK_S
                    if splice.pending:
                        held = max(0.0, held_since + self.hold_s - time.monotonic())
                        timeout = held if timeout is None else min(timeout, held)
                    events = sel.select(timeout)
                    if pidfd < 0 and proc.poll() is not None:
                        events.append((selectors.SelectorKey(-1, -1, 0, "exit"), 0))
                    for key, mask in events:
                        if key.data == "pty":
                            if mask & selectors.EVENT_WRITE:
                                del to_child[: _write_some(master, to_child)]
                            if mask & selectors.EVENT_READ:
                                data = _read(master)
                                if data is None:  # every holder closed it; the exit follows
                                    sel.unregister(master)
                                    pty_open = False
                                    to_child.clear()
                                else:
                                    self._modes.feed(data)
                                    _write_all(self.stdout, splice.output(data))
                        elif key.data == "user":
                            to_child += _read_user(self.stdin)
                        elif key.data == "notice":
                            with suppress(BlockingIOError):
                                os.read(wake, CHUNK)
                            while self._notices:
                                if not splice.pending:
                                    held_since = time.monotonic()
                                _write_all(self.stdout, splice.notice(self._notices.popleft()))
                        else:  # the child exited: what it wrote is in the pty's buffer
                            while pty_open and (data := _read(master)):
                                self._modes.feed(data)
                                _write_all(self.stdout, splice.output(data))
                            _write_all(self.stdout, splice.force())
                            return
                    if splice.pending and time.monotonic() >= held_since + self.hold_s:
                        _write_all(self.stdout, splice.force())
                    if pty_open:
                        writing = selectors.EVENT_WRITE if to_child else 0
                        sel.modify(master, selectors.EVENT_READ | writing, "pty")
            finally:
                if pidfd >= 0:
                    os.close(pidfd)


def _write_some(fd: int, data: bytearray) -> int:
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0


def _read(fd: int) -> bytes | None:
    """Bytes from a non-blocking pty master: b"" when none are ready, None at its end (EIO)."""
    try:
        return os.read(fd, CHUNK)
    except BlockingIOError:
        return b""
    except OSError as exc:
        if exc.errno == errno.EIO:
            return None
        raise


def _read_user(fd: int) -> bytes:
    try:
        data = os.read(fd, CHUNK)
    except BlockingIOError:
        return b""
    except OSError as exc:
        raise Hangup(f"the terminal went away ({exc.strerror})", gone=True) from None
    if not data:
        raise Hangup("the terminal went away (end of input)", gone=True)
    return data
