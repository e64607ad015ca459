"""The shared stack's secret files: made once (0600, under a 0700 directory), never overwritten.

Redis credentials, one line `USER PASSWORD` each: `redis_admin` (the host CLI only: it makes
and removes the sessions' users; never mounted into any container), `redis_approval` and
`redis_worker` (one per service), and `redis_acl`, the ACL file Redis starts with (password
hashes only, the default user off), rewritten from them on every start.

The containers that read them run as our service user (uid 10001): as root we hand the service
files to that uid; as anyone else the python services run as the caller's uid instead (compose
reads IRONCURTAIN_SECRETS_UID), so the files never need to be readable by others.

TLS: `tls/` (shared/pki.py): the team CA (its key 0600, mounted nowhere) and Redis's certificate
and key (mounted into Redis only), made on the first start; the certificate names `redis` and the
host names in `team_hosts` (one a line, written by `shared up --host NAME`: what other machines
dial), re-issued when those change.

People: `people/members.json` holds each member's token digest (members.py); the folder is
mounted read-only into the approval service only. On first start a member `admin` is made whose
token is `approval_token` here (the operator's own credential, readable by them alone, mounted
nowhere): the old shared token, where one exists, becomes that member, so nothing changes for the
operator while every decision now names a member. `member remove admin` retires it once people
have their own.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from .. import once
from ..escalation import acl
from ..people.members import MembersFile
from ..people.tokens import load_or_create
from .pki import TeamTLS

SERVICE_UID = 10001


@dataclass(frozen=True, slots=True)
class SharedFiles:
    directory: Path

    def credential_file(self, user: str) -> Path:
        return (
            self.directory
            / {
                acl.ADMIN: "redis_admin",
                acl.APPROVAL: "redis_approval",
                acl.WORKER: "redis_worker",
            }[user]
        )

    @property
    def redis_admin(self) -> Path:
        return self.credential_file(acl.ADMIN)

    @property
    def redis_acl(self) -> Path:
        return self.directory / "redis_acl"

    @property
    def approval_token(self) -> Path:
        return self.directory / "approval_token"

    @property
    def tls(self) -> TeamTLS:
        return TeamTLS(self.directory / "tls")

    @property
    def team_hosts_file(self) -> Path:
        return self.directory / "team_hosts"

    def team_hosts(self) -> list[str]:
        """The names other machines reach this stack by (none: a single-machine stack)."""
        if not self.team_hosts_file.exists():
            return []
        return [w for w in self.team_hosts_file.read_text().split() if w]

    def set_team_hosts(self, hosts: list[str]) -> None:
        from .pki import check_names

        check_names(hosts or ["redis"])
        # The operator's order: the first is the name other machines' sessions dial.
        text = "".join(f"{h}\n" for h in dict.fromkeys(hosts))
        self.team_hosts_file.unlink(missing_ok=True)
        if text:
            once.publish(self.team_hosts_file, text.encode(), 0o600)

    @property
    def people(self) -> Path:
        return self.directory / "people"

    @property
    def notify(self) -> Path:
        """The team's notifier settings (`webhook.json`), mounted read-only into the worker."""
        return self.directory / "notify"

    def members(self) -> MembersFile:
        owner = SERVICE_UID if os.geteuid() == 0 else None
        return MembersFile(self.people / "members.json", owner=owner)

    def lock(self) -> AbstractContextManager[None]:
        """Held by whoever checks and starts the shared stack (one at a time, across processes)."""
        return once.held(self.directory / ".up.lock")

    def admin(self) -> acl.Credential:
        return acl.Credential.parse(self.redis_admin.read_text())

    def ensure(self, say: Callable[[str], None] = print) -> int:
        """Create what is missing; returns the uid the python services must run as."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory.chmod(0o700)
        credentials = []
        for user in acl.SERVICES:
            path = self.credential_file(user)
            if not path.exists() and once.publish(
                path, acl.Credential.new(user).line().encode(), 0o600
            ):
                say(f"shared: a new Redis credential for {user} was written to {path}")
            credentials.append(acl.Credential.parse(path.read_text()))
        text = acl.acl_file(credentials).encode()
        if not self.redis_acl.exists() or self.redis_acl.read_bytes() != text:
            # Same content from every racer; a private name each, then an atomic rename.
            tmp = self.redis_acl.with_name(f".redis_acl.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(text)
            os.replace(tmp, self.redis_acl)
        self.tls.ensure(self.team_hosts(), say=say)
        migrating = self.approval_token.exists() and not self.members().path.exists()
        token = load_or_create(self.approval_token, say=say)
        self.people.mkdir(exist_ok=True, mode=0o700)
        self.people.chmod(0o700)
        self.notify.mkdir(exist_ok=True, mode=0o700)
        if not self.members().path.exists():
            self.members().add_with_token("admin", token)
            if migrating:
                where = self.approval_token
                say(f"shared: the old approval token is the member `admin` now: {where}")
        service_files = (self.credential_file(acl.APPROVAL), self.credential_file(acl.WORKER))
        private = (self.redis_admin, self.redis_acl, *service_files, self.approval_token)
        for path in (*private, self.tls.ca_key, self.tls.server_key):
            if path.stat().st_mode & 0o077:
                raise PermissionError(f"{path} is readable by others; fix its mode (0600)")
        if os.geteuid() == 0:
            for path in (*service_files, self.people, self.members().path, self.notify):
                os.chown(path, SERVICE_UID, SERVICE_UID)
            if self.team_hosts():  # a team server: the registrar (uid 10001) reads these
                for path in (self.redis_admin, self.tls.key("registrar")):
                    os.chown(path, SERVICE_UID, SERVICE_UID)
            else:  # the host CLI's alone again
                os.chown(self.redis_admin, 0, 0)
            return SERVICE_UID
        return os.geteuid()
