"""`ironcurtain audit verify`: streams the log, reads its head and checkpoints, runs the check."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .anchor import checkpoints_path, key_path, read_checkpoints, read_head_bytes
from .bound import DEFAULT
from .chain import NOTHING, Head, Report, verify
from .writer import head_path


class AnchorError(ValueError):
    """The session's anchor folder is there but cannot be trusted (a link, another's, open)."""


def find_anchor(log: Path) -> Path | None:
    """The anchor of a log at <session>/audit/<door>/NAME.jsonl: exactly <session>/anchor.

    Never a folder beside the log or anywhere under `audit/` (a proxy writes its folder there,
    and could plant an anchor of its own with a key of its own), never found through a link (the
    log's path is not resolved: a link planted in the folder must not choose the anchor), and
    only the host user's own private folder. None: the log is not in a session's layout."""
    absolute = Path(os.path.abspath(log))
    if len(absolute.parents) < 3 or absolute.parents[1].name != "audit":
        return None
    candidate = absolute.parents[2] / "anchor"
    try:
        found = os.lstat(candidate)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AnchorError(f"{candidate}: {exc.strerror}") from None
    if not stat.S_ISDIR(found.st_mode):
        raise AnchorError(f"{candidate}: not a folder (a link or a file)")
    if found.st_uid != os.getuid() or found.st_mode & 0o077:
        raise AnchorError(f"{candidate}: not your private folder (owner or mode changed)")
    return candidate


def _lines(f: BinaryIO) -> Iterator[bytes]:
    while raw := f.readline(DEFAULT.line + 2):  # a longer line fails the check, unread
        yield raw


def verify_file(path: Path, key: bytes, checkpoints: Path | None = None) -> Report:
    """Check `path` with `key`; with `checkpoints`, that file must exist and match."""
    if path.is_symlink() or not path.is_file():
        return Report(False, 0, f"{path}: no such audit log (or a link, not the log)")
    head: Head | None = None
    try:
        data = read_head_bytes(path)
        if data is not None:
            head = NOTHING if not data else Head.decode(data)  # empty: nothing written yet
    except (ValueError, UnicodeDecodeError):
        return Report(False, 0, f"{head_path(path)}: malformed head")
    marks = None
    if checkpoints is not None:
        try:
            marks = read_checkpoints(checkpoints)
        except FileNotFoundError:
            return Report(False, 0, f"{checkpoints}: no checkpoints, though the anchor is there")
        except ValueError as exc:
            return Report(False, 0, str(exc))
    with path.open("rb") as f:
        return verify(_lines(f), key, head, marks)


__all__ = ["AnchorError", "checkpoints_path", "find_anchor", "key_path", "verify_file"]
