"""A member token in a file: read (the CLI), or made there once (0600, shown once: the `admin`
member that `ironcurtain shared up` creates on first start)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from .. import once

MIN_LENGTH = 32


class TokenError(Exception):
    """The token file exists but cannot be used: refuse to start."""


def read(path: Path) -> str:
    token = path.read_text().strip()
    if len(token) < MIN_LENGTH:
        raise TokenError(f"the approval token in {path} is shorter than {MIN_LENGTH} characters")
    return token


def load_or_create(path: Path, say: Callable[[str], None] = print) -> str:
    """The token in `path`; if there is none, a new one written 0600 and shown once via `say`."""
    try:
        return read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    if not once.publish(path, (token + "\n").encode(), 0o600):
        return read(path)  # another process won the race: theirs is whole (published atomically)
    if path.stat().st_mode & 0o077:
        raise TokenError(f"{path} was created readable by others; refusing to use it")
    say(f"approval: a new token was generated (shown once): {token}")
    say(f"approval: it is stored in {path} (mode 0600)")
    return token
