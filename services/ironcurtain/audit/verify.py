"""`ironcurtain audit verify FILE`: reads the log and its head, runs the pure check."""

from __future__ import annotations

from pathlib import Path

from .chain import GENESIS, Head, Report, verify
from .writer import head_path


def verify_file(path: Path) -> Report:
    if not path.is_file():
        return Report(False, 0, f"{path}: no such audit log")
    head = None
    try:
        data = head_path(path).read_bytes()
        head = Head(-1, GENESIS) if not data else Head.decode(data)  # empty: nothing written yet
    except FileNotFoundError:
        head = None
    except ValueError:
        return Report(False, 0, f"{head_path(path)}: malformed head")
    with path.open("rb") as f:
        lines = f.readlines()
    return verify(lines, head)
