"""The approval token: read from a secret file, made there on first start (0600, shown once)."""

from __future__ import annotations

import hashlib
import hmac
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
    say(f"approval: it is stored in {path} (mode 0600); `ironcurtain approve` reads it from there")
    return token


def matches(given: str, token: str) -> bool:
    """Constant-time comparison (on digests, so lengths leak nothing either)."""
    a = hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest()
    b = hashlib.sha256(token.encode()).digest()
    return hmac.compare_digest(a, b)


def session_key(token: str) -> bytes:
    """The cookie-signing key, derived from the token: the same in every gunicorn worker, and
    rotating the token logs every browser out."""
    return hmac.new(token.encode(), b"ironcurtain approval session", hashlib.sha256).digest()
