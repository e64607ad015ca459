"""Names of a session: its id, and the compose project that many worktrees can run side by side."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

PROJECT_PREFIX = "ic"
PROJECT_LABEL = "com.docker.compose.project"
_UNSAFE = re.compile(r"[^a-z0-9]+")


def new_session_id() -> str:
    return secrets.token_hex(4)


def worktree_slug(worktree: Path, max_len: int = 20) -> str:
    """A readable, compose-safe name for a worktree: its folder name plus a short path hash.

    Two checkouts with the same folder name (say, two clones called `app`) still differ.
    """
    readable = _UNSAFE.sub("-", worktree.name.lower()).strip("-")[:max_len].strip("-") or "wt"
    digest = hashlib.sha256(str(worktree.resolve()).encode()).hexdigest()[:6]
    return f"{readable}-{digest}"


@dataclass(frozen=True, slots=True)
class SessionName:
    worktree: str  # slug
    session_id: str

    @property
    def project(self) -> str:
        return f"{PROJECT_PREFIX}-{self.worktree}-{self.session_id}"

    @classmethod
    def parse(cls, project: str) -> SessionName | None:
        """The name back from a compose project name; None if it is not one of ours."""
        match = re.fullmatch(rf"{PROJECT_PREFIX}-([a-z0-9-]+)-([0-9a-f]{{8}})", project)
        return cls(match.group(1), match.group(2)) if match else None


def session_name(worktree: Path, session_id: str | None = None) -> SessionName:
    return SessionName(worktree_slug(worktree), session_id or new_session_id())
