"""`ironcurtain audit verify`: streams the log, reads its head and checkpoints, runs the check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .anchor import checkpoints_path, key_path, read_checkpoints
from .bound import DEFAULT
from .chain import NOTHING, Head, Report, verify
from .writer import head_path


def find_anchor(log: Path) -> Path | None:
    """The session's anchor folder for a log at <session>/audit/<door>/NAME.jsonl."""
    for parent in list(log.resolve().parents)[:3]:
        candidate = parent / "anchor"
        if candidate.is_dir():
            return candidate
    return None


def _lines(f: BinaryIO) -> Iterator[bytes]:
    while raw := f.readline(DEFAULT.line + 2):  # a longer line fails the check, unread
        yield raw


def verify_file(path: Path, key: bytes, checkpoints: Path | None = None) -> Report:
    """Check `path` with `key`; with `checkpoints`, that file must exist and match."""
    if not path.is_file():
        return Report(False, 0, f"{path}: no such audit log")
    head: Head | None = None
    try:
        data = head_path(path).read_bytes()
        head = NOTHING if not data else Head.decode(data)  # empty: nothing written yet
    except FileNotFoundError:
        head = None
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


__all__ = ["checkpoints_path", "find_anchor", "key_path", "verify_file"]
