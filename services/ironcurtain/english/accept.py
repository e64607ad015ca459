"""Show a proposed file as a unified diff; write it only when a human accepted it.

The write is atomic (a temporary file in the same directory, then rename), so a reader -- the
proxy starting a session -- sees either the old policy or the new one, never half of it.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO


def diff(path: Path, current: str, proposed: str) -> str:
    return "".join(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            proposed.splitlines(keepends=True),
            f"{path} (current)",
            f"{path} (proposed)",
        )
    )


def ask_tty() -> bool:
    if not sys.stdin.isatty():
        return False
    return input("Write this change? [y/N] ").strip().lower() in ("y", "yes")


def offer(
    path: Path,
    current: str,
    proposed: str,
    *,
    accept: bool,
    confirm: Callable[[], bool] = ask_tty,
    out: TextIO | None = None,
) -> bool:
    """Print the diff; write if accepted. True when the file now holds the proposal."""
    out = out or sys.stdout
    if proposed == current:
        print(f"{path}: no change", file=out)
        return True
    print(diff(path, current, proposed), file=out, end="")
    if not (accept or confirm()):
        print(f"{path}: not written (pass --accept to write it)", file=out)
        return False
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_text(proposed, encoding="utf-8")
    os.chmod(tmp, path.stat().st_mode & 0o777)
    os.replace(tmp, path)
    print(f"{path}: written", file=out)
    return True
