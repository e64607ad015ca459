"""The audit log on disk: append a keyed, bounded record, fsync it, then note the new head.

One writer per file. The MCP proxy, the MITM proxy and the escalation channel each use this class;
`append()` returns only after the line is on disk, so a caller can act on what it just logged.
The key (key_files.py) is held by this process alone; the host copies the head into checkpoints
(anchor.py) where no container can write.

A failed write (a full disk: ENOSPC) leaves no partial line: the file is cut back to the end of
the last whole line, and the caller gets AuditError and must refuse what it was about to do.
A failed sync cannot be undone (the kernel may have dropped the pages), so it breaks the log for
good: every later append fails too, and nothing is acted on unaudited.

A log has a size limit (`max_bytes`, 1 GiB by default): a hostile caller must not fill the
host's disk with refused calls. `admit()` refuses a new call once less than `reserve_bytes` is
left, so the lines of calls already under way (outcomes, escalations) still fit; no append ever
takes the file past the limit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread

from .bound import DEFAULT, Limits, bounded
from .chain import GENESIS, KEY_BYTES, Head, mac, seal
from .redact import redact

logger = logging.getLogger(__name__)

TAIL_BYTES = 16384  # what tail() reads from the end at most
TAIL_LINE_CHARS = 1024  # what it keeps of each line
DEFAULT_MAX_BYTES = 1 << 30  # a session's log; about a million calls
DEFAULT_RESERVE_BYTES = 16 << 20  # kept for the lines of calls already under way


class AuditError(RuntimeError):
    """The log cannot be written: callers must fail closed (refuse the action).

    `reason` is short and safe to show the agent (no path): e.g. "No space left on device"."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


def head_path(log: Path) -> Path:
    return log.with_name(log.name + ".head")


@dataclass(frozen=True, slots=True)
class FileOps:
    """The system calls the writer makes, so tests can inject a full disk."""

    # Looked up at each call, so a test's monkeypatch of `os` reaches them too.
    write: Callable[[int, bytes], int] = lambda fd, data: os.write(fd, data)
    fdatasync: Callable[[int], None] = lambda fd: os.fdatasync(fd)
    ftruncate: Callable[[int, int], None] = lambda fd, size: os.ftruncate(fd, size)


def _same(value: Any) -> Any:
    return value


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


class AuditLog:
    def __init__(
        self,
        path: Path,
        key: bytes,
        clock: Callable[[], float] = time.time,
        *,
        limits: Limits = DEFAULT,
        ops: FileOps | None = None,
        redacting: bool = True,
        max_bytes: int = DEFAULT_MAX_BYTES,
        reserve_bytes: int = DEFAULT_RESERVE_BYTES,
    ) -> None:
        """`redacting=False` for a writer whose records are its own typed fields (the MITM's:
        never a body or a key), where names like `input_tokens` are not secrets."""
        if len(key) < KEY_BYTES:
            raise ValueError(f"an audit key has at least {KEY_BYTES} bytes")
        if not 0 <= reserve_bytes < max_bytes:
            raise ValueError("an audit log's reserve is smaller than its size limit")
        self.max_bytes, self.reserve_bytes = max_bytes, reserve_bytes
        self.path = path
        self._key = key
        self._clock = clock
        self._limits = limits
        self._ops = ops or FileOps()
        self._redact = redact if redacting else _same
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._broken = ""  # why every append fails from now on
        path.parent.mkdir(parents=True, exist_ok=True)
        old_umask = os.umask(0o077)
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
            self._head_fd = os.open(
                head_path(path), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600
            )
        finally:
            os.umask(old_umask)
        try:
            self._seq, self._prev, self._size = self._resume(path, key)
        except BaseException:
            self.close()
            raise
        self._synced = self._seq  # lines known to be on disk
        self._sync_done: anyio.Event | None = None

    @staticmethod
    def _resume(path: Path, key: bytes) -> tuple[int, str, int]:
        """Continue an existing chain (a restarted proxy appends to the same session log),
        from its last line, read from the end."""
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return 0, GENESIS, 0
            last = _last_lines(f, size, 1, DEFAULT.line + 2)
        if not last or not last[-1].endswith(b"\n"):
            raise AuditError(f"{path}: the last line is incomplete; run `ironcurtain audit verify`")
        line = last[-1][:-1]
        try:
            seq = int(json.loads(line)["seq"])
        except (ValueError, KeyError, TypeError):
            raise AuditError(f"{path}: the last line is not a chained record") from None
        return seq + 1, mac(key, line), size

    def append(self, record: Mapping[str, Any], *, durable: bool = True) -> str:
        """Write one record (bounded, secrets redacted, time added) and return the line's MAC.

        durable=True (the default) returns only once the line is on disk: use it for anything
        written before an action. A line written with durable=False (an outcome, after the
        fact) reaches the disk with the next durable line at the latest.
        """
        value, _ = self._write(record, durable)
        return value

    async def append_durably(self, record: Mapping[str, Any], *, inline: bool = False) -> str:
        """As append(durable=True), for event-loop callers: returns only once the line is on
        disk. Lines written while a sync is under way share the next one (group commit), so
        concurrent calls do not each pay for their own.

        The fdatasync runs in a worker thread, so the event loop serves other requests while
        the disk works. `inline=True` (the caller knows nothing else is in flight) syncs on
        the loop's own thread instead, which saves the thread hand-off: on a busy machine
        waking a thread and then the loop again costs more than the sync itself."""
        value, count = self._write(record, durable=False)
        while self._synced < count:
            if self._sync_done is None and inline:
                # Alone: no line to wait for and nobody to share the sync with, so no
                # checkpoint, no event and no thread; the sync itself is the same.
                target = self._seq
                self._sync()
                self._synced = max(self._synced, target)
            elif self._sync_done is None:
                done = self._sync_done = anyio.Event()
                try:
                    await anyio.lowlevel.checkpoint()  # let the other ready tasks write first
                    target = self._seq
                    await anyio.to_thread.run_sync(self._sync)
                finally:
                    self._sync_done = None
                    done.set()
                self._synced = max(self._synced, target)
            else:
                await self._sync_done.wait()
                if self._broken:
                    raise AuditError(
                        f"the audit log {self.path} is broken: {self._broken}", self._broken
                    )
        return value

    def _sync(self) -> None:
        # Holds the sync lock so close() cannot close (and the kernel reuse) the fd mid-sync.
        with self._sync_lock:
            try:
                if self._fd < 0:
                    raise OSError(9, "the audit log is closed")
                self._ops.fdatasync(self._fd)
            except OSError as exc:
                self._broken = self._broken or _why(exc)
                raise AuditError(
                    f"cannot sync the audit log {self.path}: {_why(exc)}", _why(exc)
                ) from exc

    def _write(self, record: Mapping[str, Any], durable: bool) -> tuple[str, int]:
        body = {"time": round(self._clock(), 6), **self._redact(bounded(record, self._limits))}
        with self._lock:
            if self._broken:
                raise AuditError(
                    f"the audit log {self.path} is broken: {self._broken}", self._broken
                )
            if self._fd < 0:
                raise AuditError(f"the audit log {self.path} is closed", "the audit log is closed")
            line = seal(self._seq, self._prev, body, self._limits)
            self._append_whole(line + b"\n")
            if durable:
                try:
                    self._ops.fdatasync(self._fd)
                except OSError as exc:
                    self._broken = _why(exc)
                    raise AuditError(
                        f"cannot sync the audit log {self.path}: {_why(exc)}", _why(exc)
                    ) from exc
            value = mac(self._key, line)
            self._seq, self._prev = self._seq + 1, value
            if durable:
                self._synced = self._seq
            # The head is best effort after the line: a crash here leaves it behind the log,
            # which verify reports as a note, never as a cut-off end.
            try:
                os.pwrite(self._head_fd, Head(self._seq - 1, value).encode(), 0)
            except OSError as exc:
                logger.warning("the audit head %s is behind: %s", head_path(self.path), _why(exc))
            return value, self._seq

    def admit(self) -> None:
        """AuditError if a new call must be refused: the log is broken, or so near its size
        limit that the lines of the calls already under way might not fit."""
        with self._lock:
            if self._broken:
                raise AuditError(
                    f"the audit log {self.path} is broken: {self._broken}", self._broken
                )
            if self._size + self.reserve_bytes >= self.max_bytes:
                raise AuditError(
                    f"the audit log {self.path} is full ({self._size} bytes; its limit is "
                    f"{self.max_bytes})",
                    f"the audit log reached its size limit of {self.max_bytes} bytes",
                )

    def _append_whole(self, data: bytes) -> None:
        """All of `data` after the last whole line, or nothing of it (and AuditError)."""
        if self._size + len(data) > self.max_bytes:
            raise AuditError(
                f"the audit log {self.path} is full ({self._size} bytes; its limit is "
                f"{self.max_bytes})",
                f"the audit log reached its size limit of {self.max_bytes} bytes",
            )
        done = 0
        try:
            while done < len(data):
                written = self._ops.write(self._fd, data[done:])
                if written <= 0:
                    raise OSError(28, "No space left on device")
                done += written
        except OSError as exc:
            if done:  # a partial line: cut it off, so the lines already there stay a chain
                try:
                    self._ops.ftruncate(self._fd, self._size)
                except OSError as cut:
                    self._broken = f"{_why(exc)}, and a partial line remains ({_why(cut)})"
            raise AuditError(
                f"cannot write the audit log {self.path}: {_why(exc)}", _why(exc)
            ) from exc
        self._size += len(data)

    def tail(self, count: int) -> tuple[str, ...]:
        """The last `count` lines, e.g. for an escalation's context: read from the end of the
        file, at most TAIL_BYTES, each line cut to TAIL_LINE_CHARS."""
        with self.path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            lines = _last_lines(f, size, count, TAIL_BYTES)
        out = []
        for raw in lines:
            text = raw.decode("utf-8", "replace").rstrip("\n")
            out.append(text if len(text) <= TAIL_LINE_CHARS else text[:TAIL_LINE_CHARS] + "...")
        return tuple(out)

    def close(self) -> None:
        """Close the files; later appends raise AuditError (never write to a reused fd)."""
        with self._sync_lock, self._lock:
            for fd in (self._fd, self._head_fd):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._fd = self._head_fd = -1


def _last_lines(f: Any, size: int, count: int, budget: int) -> list[bytes]:
    """Up to `count` whole lines from the end of a file of `size` bytes, reading at most
    `budget` bytes backwards; a line cut by the budget comes first, without its start."""
    start = max(0, size - budget)
    f.seek(start)
    data = f.read(size - start)
    lines = data.splitlines(keepends=True)
    if start > 0 and lines and len(lines) > count:
        lines = lines[1:]  # begins mid-line
    return lines[-count:] if count > 0 else []
