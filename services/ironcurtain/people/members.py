"""The team's members and their credentials: a JSON file of names and token digests.

Tokens are 256-bit random strings made here, never chosen by people, so a slow password hash buys
nothing: nobody can search 2**256 candidates however fast the hash is. A per-member random salt
with SHA-256 keeps equal tokens from showing as equal digests and makes every `member add` a new
credential (the salt is the credential's id: a web session names it, so removing or re-adding a
member ends every session made with the old credential). The plaintext token is shown once.

Pure parsing and checking here; `MembersFile` does the reading and writing (under a lock, atomic
renames, so a reader in another process sees the old file or the new one, never half of one).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import once

NAME = re.compile(r"[a-z][a-z0-9._-]{0,31}")
TOKEN_BYTES = 32  # 256 bits
MAX_FILE_BYTES = 1 << 20


class MemberError(ValueError):
    """A name or a members file that cannot be used; the message says what was refused."""


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    salt: str  # hex; also the credential's id
    digest: str  # hex sha256(salt || token)
    added: float

    def holds(self, token: str) -> bool:
        return hmac.compare_digest(digest(self.salt, token), self.digest)


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise MemberError(
            f"member name {name!r} refused: use 1-32 of a-z 0-9 . _ - starting with a letter"
        )
    return name


def digest(salt: str, token: str) -> str:
    data = bytes.fromhex(salt) + token.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


def new_credential(name: str, now: float) -> tuple[Member, str]:
    """A member with a fresh token: (member, token); the token exists only in the result."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    salt = secrets.token_hex(16)
    return Member(check_name(name), salt, digest(salt, token), now), token


def parse(data: bytes) -> dict[str, Member]:
    """The members in a file's bytes; anything malformed refuses the whole file (fail closed)."""
    try:
        raw = json.loads(data)
        entries = raw["members"]
        members = {}
        for name, entry in entries.items():
            salt, hashed, added = entry["salt"], entry["digest"], float(entry["added"])
            if not (isinstance(salt, str) and re.fullmatch(r"[0-9a-f]{32}", salt)):
                raise MemberError(f"member {name!r}: bad salt")
            if not (isinstance(hashed, str) and re.fullmatch(r"[0-9a-f]{64}", hashed)):
                raise MemberError(f"member {name!r}: bad digest")
            members[check_name(name)] = Member(name, salt, hashed, added)
    except MemberError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MemberError(f"the members file is malformed ({exc.__class__.__name__})") from None
    return members


def dump(members: Mapping[str, Member]) -> bytes:
    entries = {
        m.name: {"salt": m.salt, "digest": m.digest, "added": m.added}
        for m in sorted(members.values(), key=lambda m: m.name)
    }
    return (json.dumps({"members": entries}, indent=2) + "\n").encode()


def find(members: Mapping[str, Member], token: str) -> Member | None:
    """The member holding `token` (every digest is compared: the time says nothing of which)."""
    found = None
    for member in members.values():
        if member.holds(token) and found is None:
            found = member
    return found


@dataclass(frozen=True, slots=True)
class MembersFile:
    """The file on disk. The approval service only reads it (mounted read-only); the host CLI
    changes it under `<file>.lock`."""

    path: Path
    owner: int | None = None  # chown written files to this uid (root hands them to the service)

    def load(self) -> dict[str, Member]:
        try:
            with self.path.open("rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return {}
        if len(data) > MAX_FILE_BYTES:
            raise MemberError(f"{self.path} is larger than {MAX_FILE_BYTES} bytes")
        return parse(data)

    def add(self, name: str, now: float | None = None) -> str:
        """Add `name` with a new token and return the token; refuses a name already there."""
        check_name(name)
        with once.held(self.path.with_name(self.path.name + ".lock")):
            members = self.load()
            if name in members:
                raise MemberError(f"member {name!r} exists; remove it first to issue a new token")
            member, token = new_credential(name, time.time() if now is None else now)
            self._write({**members, name: member})
        return token

    def add_with_token(self, name: str, token: str) -> None:
        """Record an existing token (the one-time migration of the old shared token)."""
        check_name(name)
        with once.held(self.path.with_name(self.path.name + ".lock")):
            members = self.load()
            if name in members:
                return
            salt = secrets.token_hex(16)
            self._write({**members, name: Member(name, salt, digest(salt, token), time.time())})

    def remove(self, name: str) -> bool:
        with once.held(self.path.with_name(self.path.name + ".lock")):
            members = self.load()
            if name not in members:
                return False
            self._write({k: v for k, v in members.items() if k != name})
        return True

    def _write(self, members: Mapping[str, Member]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(dump(members))
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o600)
            if self.owner is not None:
                os.chown(temporary, self.owner, self.owner)
            os.replace(temporary, self.path)  # readers see the old file or the new, never half
        finally:
            temporary.unlink(missing_ok=True)


class MembersCache:
    """What the service checks credentials against: re-read whenever the file changes (stat on
    every call), so `member remove` takes effect on the next request in every worker."""

    def __init__(self, file: MembersFile) -> None:
        self.file = file
        self._stamp: tuple[int, int, int] | None = None
        self._members: dict[str, Member] = {}

    def current(self) -> dict[str, Member]:
        try:
            st = self.file.path.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            self._stamp, self._members = None, {}
            return {}
        if stamp != self._stamp:
            self._members = self.file.load()  # a malformed file raises: nobody is let in
            self._stamp = stamp
        return self._members
