"""The shared stack's secret files: made once (0600, under a 0700 directory), never overwritten.

The containers that read them run as our service user (uid 10001): as root we hand the files to
that uid; as anyone else the python services run as the caller's uid instead (compose reads
IRONCURTAIN_SECRETS_UID), so the files never need to be readable by others.

People: `people/members.json` holds each member's token digest (members.py); the folder is
mounted read-only into the approval service only. On first start a member `admin` is made whose
token is `approval_token` here (the operator's own credential, readable by them alone): the old
shared token, where one exists, becomes that member, so nothing changes for the operator while
every decision now names a member. `member remove admin` retires it once people have their own.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from .. import once
from ..approval.members import MembersFile
from ..approval.secret import load_or_create

SERVICE_UID = 10001


@dataclass(frozen=True, slots=True)
class SharedFiles:
    directory: Path

    @property
    def redis_password(self) -> Path:
        return self.directory / "redis_password"

    @property
    def approval_token(self) -> Path:
        return self.directory / "approval_token"

    @property
    def people(self) -> Path:
        return self.directory / "people"

    def members(self) -> MembersFile:
        owner = SERVICE_UID if os.geteuid() == 0 else None
        return MembersFile(self.people / "members.json", owner=owner)

    def lock(self) -> AbstractContextManager[None]:
        """Held by whoever checks and starts the shared stack (one at a time, across processes)."""
        return once.held(self.directory / ".up.lock")

    def ensure(self, say: Callable[[str], None] = print) -> int:
        """Create what is missing; returns the uid the python services must run as."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory.chmod(0o700)
        if not self.redis_password.exists() and once.publish(
            self.redis_password, (secrets.token_hex(32) + "\n").encode(), 0o600
        ):
            say(f"shared: a new Redis password was written to {self.redis_password}")
        migrating = self.approval_token.exists() and not self.members().path.exists()
        token = load_or_create(self.approval_token, say=say)
        self.people.mkdir(exist_ok=True, mode=0o700)
        self.people.chmod(0o700)
        if not self.members().path.exists():
            self.members().add_with_token("admin", token)
            if migrating:
                where = self.approval_token
                say(f"shared: the old approval token is the member `admin` now: {where}")
        for path in (self.redis_password, self.approval_token):
            if path.stat().st_mode & 0o077:
                raise PermissionError(f"{path} is readable by others; fix its mode (0600)")
        if os.geteuid() == 0:
            for path in (self.redis_password, self.people, self.members().path):
                os.chown(path, SERVICE_UID, SERVICE_UID)
            return SERVICE_UID
        return os.geteuid()
