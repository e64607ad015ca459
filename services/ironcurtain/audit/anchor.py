"""Checkpoints: the host's copies of a log's head, where no container can write.

Whoever can write a log's folder (its proxy, and anything that reaches into that container) can
also rewrite the head beside the log. So `ironcurtain run` copies each head, every second and
once more after the containers stop, into `<session>/anchor/NAME.checkpoints`: a 0700 folder of
the host user's that is mounted into no container. A line edited, or the end cut off, before the
last checkpoint no longer matches it, key or no key.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .chain import HEAD_BYTES, Head
from .writer import head_path


def checkpoints_path(anchor: Path, log: Path) -> Path:
    return anchor / f"{log.stem}.checkpoints"


def key_path(anchor: Path, log: Path) -> Path:
    return anchor / f"{log.stem}.key"


def read_head_bytes(log: Path) -> bytes | None:
    """The head file beside `log` (None: there is none). Never through a link, never a FIFO or
    device, never more than a head's size: the folder is the container's to fill. ValueError
    (saying what) for anything but a small regular file."""
    try:
        fd = os.open(head_path(log), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:  # ELOOP: a link
        raise ValueError(f"{head_path(log)}: not a head file ({exc.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{head_path(log)}: not a regular file")
        data = os.read(fd, HEAD_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > HEAD_BYTES:
        raise ValueError(f"{head_path(log)}: longer than a head")
    return data


def read_head(log: Path) -> Head | None:
    """The head beside `log` as its writer left it (None: none, or not a head)."""
    try:
        data = read_head_bytes(log)
        return Head.decode(data) if data is not None else None
    except (ValueError, UnicodeDecodeError):
        return None


def read_checkpoints(path: Path) -> list[Head]:
    heads = []
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                heads.append(Head.decode(raw))
            except (ValueError, UnicodeDecodeError):
                raise ValueError(f"{path}: line {number} is not a checkpoint") from None
    return heads


class Anchor:
    """Copies one log's head into its checkpoints file whenever it moved on."""

    def __init__(self, log: Path, checkpoints: Path) -> None:
        self.log = log
        self.checkpoints = checkpoints
        self._last = -1
        self._created = False

    def collect(self) -> Head | None:
        """The new checkpoint written, if the head moved on since the last one."""
        head = read_head(self.log)
        moved = head is not None and head.seq > self._last
        if self._created and not moved:
            return None
        old = os.umask(0o077)
        try:  # created on the first collect, empty or not: a missing file then means removed
            fd = os.open(
                self.checkpoints, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600
            )
        finally:
            os.umask(old)
        self._created = True
        try:
            if head is None or not moved:
                return None
            os.write(fd, head.encode())
            os.fdatasync(fd)
        finally:
            os.close(fd)
        self._last = head.seq
        return head
