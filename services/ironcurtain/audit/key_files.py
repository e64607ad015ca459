"""The per-session audit keys: made by `ironcurtain run`, one per writing proxy, in files.

A key is 32 random bytes, stored as 64 hex digits and a newline. It is handed to the one proxy
that writes the log as a compose secret (a file, never an environment variable), and a copy
stays in the session's host-only anchor folder, so `ironcurtain audit verify` can check the log
after the session is gone.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .chain import KEY_BYTES


class KeyFileError(ValueError):
    """A key file that is missing, malformed, or open to others."""


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def encode(key: bytes) -> str:
    return key.hex() + "\n"


def write_key(path: Path, key: bytes) -> None:
    """A new private key file (0600, created under umask 077, never through a link)."""
    old = os.umask(0o077)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    finally:
        os.umask(old)
    with os.fdopen(fd, "w") as handle:
        handle.write(encode(key))
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"{path} is open to others after writing it")


def read_key(path: Path) -> bytes:
    """The key in `path` (64 hex digits)."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read the audit key {path}: {exc}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{path} is not an audit key ({KEY_BYTES * 2} hex digits)")
    return key
