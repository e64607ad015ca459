"""The per-session Redis users, made and removed by the host CLI with the admin credential.

`ironcurtain run` makes one user per session (acl.session_rules) before its containers start
and removes it at teardown; removing a user also disconnects its clients. A registry hash (admin
only) remembers which machine made which user, so a sweep at the next start removes the users
of this machine's sessions that are gone (a crash, a kill -9) and users nobody registered.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable

import redis

from . import acl, keys
from .replies import text as reply_text


class UserExists(ValueError):
    """The session already has a user: it is never re-made with another password."""


def create_session_user(
    admin: redis.Redis,
    session_id: str,
    *,
    project: str,
    machine: str,
    member: str = "",
    exclusive: bool = False,
    clock: Callable[[], float] = time.time,
) -> acl.Credential:
    """A fresh user for the session (a new password each time): its credential.

    `exclusive` (the registrar, for other machines): refuse, with UserExists, a session that has
    a user or a registry entry already, so nobody takes over another session's keys by asking
    for its id again (HSETNX claims the id atomically). `member` is recorded as its owner."""
    credential = acl.Credential.new(acl.session_user(session_id))
    fields = {"project": project, "machine": machine, "created": clock()}
    entry = json.dumps({**fields, **({"member": member} if member else {})})
    if exclusive:
        if admin.execute_command("ACL", "GETUSER", credential.user) is not None:
            raise UserExists(f"session {session_id} has a Redis user already")
        if not admin.hsetnx(keys.ACL_USERS, credential.user, entry):
            raise UserExists(f"session {session_id} has a Redis user already")
    else:
        admin.hset(keys.ACL_USERS, credential.user, entry)  # first: a crash leaves it sweepable
    admin.execute_command(
        "ACL", "SETUSER", credential.user, *acl.session_rules(session_id), "on",
        f">{credential.password}",
    )  # fmt: skip
    return credential


def remove_session_user(admin: redis.Redis, session_id: str) -> None:
    user = acl.session_user(session_id)
    admin.execute_command("ACL", "DELUSER", user)
    admin.hdel(keys.ACL_USERS, user)


def owner(admin: redis.Redis, session_id: str) -> str | None:
    """The member recorded as the owner of a session's user (None: unknown or none)."""
    raw = admin.hget(keys.ACL_USERS, acl.session_user(session_id))
    try:
        found = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    member = found.get("member") if isinstance(found, dict) else None
    return member if isinstance(member, str) and member else None


def owned_by(admin: redis.Redis, member: str) -> dict[str, str]:
    """The registry entries of the session users `member` asked for: {user: entry}."""
    found = {}
    for user, raw in admin.hgetall(keys.ACL_USERS).items():
        text = reply_text(raw, errors="replace")
        try:
            entry = json.loads(text)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("member") == member:
            found[reply_text(user)] = text
    return found


def session_users(admin: redis.Redis) -> list[str]:
    names = [
        n.decode() if isinstance(n, bytes) else n for n in admin.execute_command("ACL", "USERS")
    ]
    return [n for n in names if n.startswith(acl.SESSION_PREFIX)]


def stale(
    users: Iterable[str],
    registry: dict[str, str],
    *,
    machine: str,
    live_projects: set[str],
) -> list[str]:
    """Which session users to remove (pure): this machine's whose project is gone, and any
    that nobody registered. Other machines' users are theirs to sweep."""
    found = []
    for user in users:
        raw = registry.get(user)
        if raw is None:
            found.append(user)
            continue
        try:
            entry = json.loads(raw)
            mine = entry["machine"] == machine
            gone = entry["project"] not in live_projects
        except (ValueError, KeyError, TypeError):
            found.append(user)
            continue
        if mine and gone:
            found.append(user)
    return found


def sweep(admin: redis.Redis, *, machine: str, live_projects: set[str]) -> list[str]:
    registry = {
        reply_text(k): reply_text(v, errors="replace")
        for k, v in admin.hgetall(keys.ACL_USERS).items()
    }
    removed = stale(session_users(admin), registry, machine=machine, live_projects=live_projects)
    for user in removed:
        admin.execute_command("ACL", "DELUSER", user)
        admin.hdel(keys.ACL_USERS, user)
    return removed


def restore_session_user(admin: redis.Redis, session_id: str, credential: acl.Credential) -> bool:
    """Put a running session's user back with its password (Redis keeps no users across a
    restart); True if it had to. The session's proxy then reconnects by itself."""
    if credential.user != acl.session_user(session_id):
        raise ValueError("that credential is not this session's")
    if admin.execute_command("ACL", "GETUSER", credential.user) is not None:
        return False
    admin.execute_command(
        "ACL", "SETUSER", credential.user, *acl.session_rules(session_id), "on",
        f">{credential.password}",
    )  # fmt: skip
    return True
