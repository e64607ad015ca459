"""Files made once and shared by every session on the machine (the MITM CA, the shared stack's
secrets), safe when several `make up` start at the same moment from different worktrees.

- `publish()` makes a file appear whole or not at all, never overwriting: it is written under a
  temporary name with its final mode, then hard-linked to its name (atomic, and it fails if the
  name exists). A reader therefore never sees a half-written file; a loser of the race learns it
  lost and reads the winner's file.
- `held()` serialises a whole check-then-create step (several files, or starting the shared stack)
  across processes with an exclusive flock; the kernel wakes the next holder, no polling.

Modes are given at creation, never through the umask: it is the whole process's, and threads of
one process (benchmarks, tests) would race on it.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def publish(path: Path, data: bytes, mode: int = 0o600) -> bool:
    """Create `path` holding `data` with `mode`; False (nothing changed) if it exists already."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)  # exactly this, whatever the umask took away
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def held(lock: Path) -> Iterator[None]:
    """An exclusive lock on the file `lock` (made 0600 if missing) for the duration."""
    lock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock
