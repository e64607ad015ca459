"""The audit log on disk: append a record, fsync it, then note the new head.

One writer per file. The MCP proxy, the MITM proxy and the escalation channel each use this class;
`append()` returns only after the line is on disk, so a caller can act on what it just logged.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread

from .chain import GENESIS, Head, digest, seal
from .redact import redact


class AuditError(RuntimeError):
    """The log cannot be written: callers must fail closed (refuse the action)."""


def head_path(log: Path) -> Path:
    return log.with_name(log.name + ".head")


class AuditLog:
    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._seq, self._prev = self._resume(path)
        self._synced = self._seq  # lines known to be on disk
        self._sync_done: anyio.Event | None = None
        old_umask = os.umask(0o077)
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._head_fd = os.open(head_path(path), os.O_WRONLY | os.O_CREAT, 0o600)
        finally:
            os.umask(old_umask)

    @staticmethod
    def _resume(path: Path) -> tuple[int, str]:
        """Continue an existing chain (a restarted proxy appends to the same session log)."""
        if not path.exists():
            return 0, GENESIS
        seq, prev = 0, GENESIS
        with path.open("rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    raise AuditError(
                        f"{path}: the last line is incomplete; run `ironcurtain audit verify`"
                    )
                seq, prev = seq + 1, digest(raw[:-1])
        return seq, prev

    def append(self, record: Mapping[str, Any], *, durable: bool = True) -> str:
        """Write one record (secrets redacted, time added) and return the line's hash.

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
            if self._sync_done is None:
                done = self._sync_done = anyio.Event()
                try:
                    await anyio.lowlevel.checkpoint()  # let the other ready tasks write first
                    target = self._seq
                    if inline:
                        self._sync()
                    else:
                        await anyio.to_thread.run_sync(self._sync)
                finally:
                    self._sync_done = None
                    done.set()
                self._synced = max(self._synced, target)
            else:
                await self._sync_done.wait()
        return value

    def _sync(self) -> None:
        # Holds the sync lock so close() cannot close (and the kernel reuse) the fd mid-sync.
        with self._sync_lock:
            try:
                if self._fd < 0:
                    raise OSError(9, "the audit log is closed")
                os.fdatasync(self._fd)
            except OSError as exc:
                raise AuditError(f"cannot sync the audit log {self.path}: {exc.strerror}") from exc

    def _write(self, record: Mapping[str, Any], durable: bool) -> tuple[str, int]:
        body = {"time": round(self._clock(), 6), **redact(record)}
        with self._lock:
            line = seal(self._seq, self._prev, body)
            try:
                os.write(self._fd, line + b"\n")
                if durable:
                    os.fdatasync(self._fd)
                value = digest(line)
                # The head is best effort after the line: a crash here leaves it behind the
                # log, which verify reports as a note, never as a cut-off end.
                os.pwrite(self._head_fd, Head(self._seq, value).encode(), 0)
            except OSError as exc:
                raise AuditError(f"cannot write the audit log {self.path}: {exc.strerror}") from exc
            self._seq, self._prev = self._seq + 1, value
            if durable:
                self._synced = self._seq
            return value, self._seq

    def tail(self, count: int) -> tuple[str, ...]:
        """The last `count` lines, e.g. for an escalation's context."""
        with self.path.open("rb") as f:
            lines = f.readlines()[-count:]
        return tuple(line.decode().rstrip("\n") for line in lines)

    def close(self) -> None:
        """Close the files; later appends raise AuditError (never write to a reused fd)."""
        with self._sync_lock, self._lock:
            for fd in (self._fd, self._head_fd):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._fd = self._head_fd = -1
