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

from . import acl, redis_keys
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
    password: str | None = None,
    clock: Callable[[], float] = time.time,
) -> acl.Credential:
    """A fresh user for the session (a new password each time): its credential.

    `exclusive` (the registrar, for other machines): refuse, with UserExists, a session that has
    a user or a registry entry already, so nobody takes over another session's keys by asking
    for its id again (HSETNX claims the id atomically). `member` is recorded as its owner.
    `password`: one the caller made (the registrar's recognisable ones, registrar/passwords.py)."""
    user = acl.session_user(session_id)
    credential = acl.Credential(user, password) if password else acl.Credential.new(user)
    fields = {"project": project, "machine": machine, "created": clock()}
    entry = json.dumps({**fields, **({"member": member} if member else {})})
    if exclusive:
        if admin.execute_command("ACL", "GETUSER", credential.user) is not None:
            raise UserExists(f"session {session_id} has a Redis user already")
        if used_before(admin, session_id):
            # An ended session's registration outlives its user (and keys some services wrote
            # late): whoever took its id would read what is left of it.
            raise UserExists(f"session id {session_id} was used before; start with a new one")
        if not admin.hsetnx(redis_keys.ACL_USERS, credential.user, entry):
            raise UserExists(f"session {session_id} has a Redis user already")
    else:
        admin.hset(
            redis_keys.ACL_USERS, credential.user, entry
        )  # first: a crash leaves it sweepable
    admin.execute_command(
        "ACL", "SETUSER", credential.user, *acl.session_rules(session_id), "on",
        f">{credential.password}",
    )  # fmt: skip
    admin.zadd(redis_keys.OPEN, {session_id: 0})  # listed from now on (redis_keys.OPEN)
    return credential


def end(admin: redis.Redis, session_id: str, clock: Callable[[], float] = time.time) -> None:
    """The session's entry in the pending index marked ended (XX: only one that is there); the
    listing drops it once its pending set is empty."""
    admin.zadd(redis_keys.OPEN, {session_id: clock()}, xx=True)


def used_before(admin: redis.Redis, session_id: str) -> bool:
    """Whether the id is known to the team Redis already: listed in the pending index, or
    holding remembered scopes, pending escalations or its registration."""
    if admin.zscore(redis_keys.OPEN, session_id) is not None:
        return True
    found = admin.exists(
        redis_keys.remembered(session_id),
        redis_keys.pending(session_id),
        redis_keys.session(session_id),
    )
    return bool(found)


def remove_session_user(admin: redis.Redis, session_id: str) -> None:
    """Teardown: the user goes (its connections with it), then the session's keys (forget)."""
    user = acl.session_user(session_id)
    admin.execute_command("ACL", "DELUSER", user)
    admin.hdel(redis_keys.ACL_USERS, user)
    forget(admin, session_id)
    end(admin, session_id)


def forget(admin: redis.Redis, session_id: str) -> None:
    """Every key of an ended session but its registration (the sessions page, and the id never
    reused: used_before): records, pending set, wake lists, decisions, handled markers,
    remembered scopes, its auto-review switch. Nobody waits for an ended session's decisions;
    what it held in the team Redis is freed at once (budget.py)."""
    info = redis_keys.session(session_id).encode()
    match = redis_keys.space(session_id) + "*"
    batch: list[bytes] = []
    for key in admin.scan_iter(match=match, count=1000):
        if key != info:
            batch.append(key)
        if len(batch) >= 1000:
            admin.unlink(*batch)
            batch = []
    if batch:
        admin.unlink(*batch)


def remove_member_sessions(admin: redis.Redis, member: str) -> list[str]:
    """A member's removal: every session user they asked for goes (its connections dropped, its
    remembered scopes deleted). The session ids removed."""
    ended = []
    for user in owned_by(admin, member):
        session_id = user.removeprefix(acl.SESSION_PREFIX)
        if session_id == user:
            continue  # a registry entry that names no session user: not ours to act on
        try:
            remove_session_user(admin, session_id)
        except ValueError:  # not a session id: nothing made it, nothing to remove
            admin.hdel(redis_keys.ACL_USERS, user)
            continue
        ended.append(session_id)
    return ended


def owner(admin: redis.Redis, session_id: str) -> str | None:
    """The member recorded as the owner of a session's user (None: unknown or none)."""
    raw = admin.hget(redis_keys.ACL_USERS, acl.session_user(session_id))
    try:
        found = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    member = found.get("member") if isinstance(found, dict) else None
    return member if isinstance(member, str) and member else None


def owned_by(admin: redis.Redis, member: str) -> dict[str, str]:
    """The registry entries of the session users `member` asked for: {user: entry}."""
    found = {}
    for user, raw in admin.hgetall(redis_keys.ACL_USERS).items():
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
        for k, v in admin.hgetall(redis_keys.ACL_USERS).items()
    }
    removed = stale(session_users(admin), registry, machine=machine, live_projects=live_projects)
    for user in removed:
        admin.execute_command("ACL", "DELUSER", user)
        admin.hdel(redis_keys.ACL_USERS, user)
        forget(admin, user.removeprefix(acl.SESSION_PREFIX))  # a crashed session's keys too
        end(admin, user.removeprefix(acl.SESSION_PREFIX))
    return removed


def restore_session_user(
    admin: redis.Redis,
    session_id: str,
    credential: acl.Credential,
    *,
    project: str,
    machine: str,
    member: str = "",
    clock: Callable[[], float] = time.time,
) -> bool:
    """Put a running session's user back with its password (Redis keeps no users across a
    restart); True if it had to. Its registry entry too, unless one is there: a user nobody
    registered is what the next start's sweep removes. The session's proxy then reconnects by
    itself."""
    if credential.user != acl.session_user(session_id):
        raise ValueError("that credential is not this session's")
    if admin.execute_command("ACL", "GETUSER", credential.user) is not None:
        return False
    fields = {"project": project, "machine": machine, "created": clock()}
    entry = json.dumps({**fields, **({"member": member} if member else {})})
    admin.hsetnx(redis_keys.ACL_USERS, credential.user, entry)
    admin.execute_command(
        "ACL", "SETUSER", credential.user, *acl.session_rules(session_id), "on",
        f">{credential.password}",
    )  # fmt: skip
    admin.zadd(redis_keys.OPEN, {session_id: 0})  # the index went with the restart too
    return True
