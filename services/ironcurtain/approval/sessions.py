"""Server-side web sessions: one small file per logged-in browser, in a folder every gunicorn
worker of the service shares (the container's tmpfs), so logging out in one worker ends the
session in all of them at once.

The browser's cookie carries a random 256-bit session id; the file is named by its SHA-256, so a
listing of the folder gives nobody a usable id. A record names the member and the credential
(its salt) it was made with: the service checks both against the members file on every request,
so `member remove` (or re-adding with a new token) ends that member's sessions immediately.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import once

SID = re.compile(r"[A-Za-z0-9_-]{43}")
MAX_SESSIONS = 10_000


class SessionsFull(Exception):
    """Too many live sessions: refuse a login instead of filling the disk."""


@dataclass(frozen=True, slots=True)
class Record:
    member: str
    credential: str
    expires: float


@dataclass(frozen=True, slots=True)
class SessionStore:
    directory: Path
    lifetime_s: float = 12 * 3600
    clock: Callable[[], float] = time.time

    def _path(self, sid: str) -> Path:
        return self.directory / hashlib.sha256(sid.encode()).hexdigest()

    def create(self, member: str, credential: str) -> str:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.prune()
        if sum(1 for _ in self.directory.iterdir()) >= MAX_SESSIONS:
            raise SessionsFull(f"{MAX_SESSIONS} sessions are open; log some out first")
        sid = secrets.token_urlsafe(32)
        record = {
            "member": member,
            "credential": credential,
            "expires": self.clock() + self.lifetime_s,
        }
        if not once.publish(self._path(sid), json.dumps(record).encode(), 0o600):
            raise RuntimeError("session id collision")  # 2**-256: never
        return sid

    def lookup(self, sid: object) -> Record | None:
        if not isinstance(sid, str) or not SID.fullmatch(sid):
            return None
        try:
            raw = json.loads(self._path(sid).read_bytes())
            record = Record(str(raw["member"]), str(raw["credential"]), float(raw["expires"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if record.expires <= self.clock():
            self.end(sid)
            return None
        return record

    def end(self, sid: object) -> None:
        if isinstance(sid, str) and SID.fullmatch(sid):
            self._path(sid).unlink(missing_ok=True)

    def prune(self) -> None:
        """Drop expired records (on every login: the folder stays bounded by live sessions)."""
        now = self.clock()
        for path in self.directory.iterdir():
            if path.name.startswith("."):
                continue
            try:
                if float(json.loads(path.read_bytes())["expires"]) <= now:
                    path.unlink(missing_ok=True)
            except (OSError, ValueError, KeyError, TypeError):
                path.unlink(missing_ok=True)


def signing_key(directory: Path) -> bytes:
    """The key that signs the cookie (CSRF token and flashes live in it): made once in the
    sessions folder, so every worker shares it and a restart of the container makes a new one."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / ".signing-key"
    once.publish(path, secrets.token_bytes(32), 0o600)
    return path.read_bytes()
