"""Who may touch what in the team Redis: one user per session, per service, and the host's admin.

Pure: the rules as Redis ACL words, credentials as data. `users.py` applies them (I/O). Allowlists
only: every user starts from `reset` (no keys, no channels, no commands, off) and gets the few it
needs. The `default` user is off, so nothing without a name and password gets in.

- a session (its MCP proxy): SET/GET its own escalation records, ZADD its pending set, pop its
  own wake keys, read its own decisions and remembered scopes, push ids onto the inbox, publish
  and subscribe to its own notices, subscribe to Redis's notifications of its own keys (its
  budget watcher), measure its own keys (MEMORY USAGE). Each key pattern in a Redis 7 selector
  with exactly its commands. No scripts, no RQ keys, nothing of another session.
- the approval service: the escalation keys of every session (decisions, remembered scopes, the
  auto-review switch, the history); no RQ keys, no ACL commands.
- the worker: RQ's keys, reading every session's escalation keys, the inbox, the history, and
  (the auto-reviewer is a decider) its own decision keys (`review:*`, never a person's
  `decision:*`) and wake keys; never remembered scopes or switches.
- admin (the host CLI only, never in a container): everything, to create and remove users.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from . import redis_keys

ADMIN = "ironcurtain-admin"
APPROVAL = "ironcurtain-approval"
WORKER = "ironcurtain-worker"
SESSION_PREFIX = "ironcurtain-session-"
SERVICES = (ADMIN, APPROVAL, WORKER)

_PASSWORD = re.compile(r"[A-Za-z0-9]{32,128}")
_USER = re.compile(r"[A-Za-z0-9_-]{1,100}")

# Commands redis-py and our clients send on every connection.
_CONNECTION = ("+ping", "+client|setname")

# A session's user outside its selectors: the connection, its own notices, transactions.
SESSION_COMMANDS = (
    *_CONNECTION,
    "+publish",
    "+subscribe",
    "+unsubscribe",
    "+multi",
    "+exec",
    "+discard",
)
# MEMORY USAGE on the keys a session writes: what its budget watcher measures (budget.py), with
# the session's own credential (a joined machine's `ironcurtain run` holds no other).
_MEASURE = "+memory|usage"
DATABASES = range(16)


@dataclass(frozen=True, slots=True)
class Credential:
    """A Redis user and its password, kept in a file as one line `USER PASSWORD`."""

    user: str
    password: str

    def __post_init__(self) -> None:
        if not _USER.fullmatch(self.user):
            raise ValueError(f"not a Redis user name: {self.user[:80]!r}")
        if not _PASSWORD.fullmatch(self.password):
            raise ValueError(f"the password of {self.user} is not 32-128 letters and digits")

    @classmethod
    def new(cls, user: str) -> Credential:
        return cls(user, secrets.token_hex(32))

    @classmethod
    def parse(cls, text: str) -> Credential:
        words = text.split()
        if len(words) != 2:
            raise ValueError("a Redis credential file holds one line: USER PASSWORD")
        return cls(words[0], words[1])

    def line(self) -> str:
        return f"{self.user} {self.password}\n"

    def __repr__(self) -> str:  # never the password, whatever logs it
        return f"Credential(user={self.user!r})"


def session_user(session_id: str) -> str:
    return SESSION_PREFIX + redis_keys.check_session(session_id)


def session_rules(session_id: str) -> list[str]:
    """ACL SETUSER words for a session's user (after the name; the password comes separately).

    Each key pattern in a selector of its own with exactly the commands the MCP proxy sends
    there (channel.py: create, wait, remembered_approval), so what a session can store is small
    and countable (budget.py): strings under `record:*`, one sorted set `pending`, and nothing
    else it can create. Wake keys are the deciders' (decide.lua pushes them): BLPOP only."""
    space = redis_keys.space(session_id)
    keyspace = " ".join(f"&__keyspace@{db}__:{space}*" for db in DATABASES)
    return [
        "reset",
        f"&{redis_keys.notices(session_id)}",
        *SESSION_COMMANDS,
        f"(~{space}record:* +set +get +expire {_MEASURE})",
        f"(~{space}pending +zadd +expire {_MEASURE})",
        f"(~{space}wake:* +blpop {_MEASURE})",
        f"(%R~{space}decision:* +get)",
        f"(%R~{space}review:* +get)",
        # An auto-review approval counts only while this is "on" (escalator.py).
        f"(%R~{space}autoreview +get)",
        f"(%R~{space}remember +hgetall)",
        # The shared inbox: RPUSH only. Key permissions alone do not do it: SET, EXPIRE and
        # ZADD count as writes too, and one session turning the inbox into a string stopped
        # every session's escalations.
        f"(%W~{redis_keys.INBOX} +rpush)",
        # Redis's own announcements of changes to this session's keys, for its budget watcher:
        # subscribing only (PUBLISH here would let a session forge them), and PSUBSCRIBE
        # patterns are checked literally, so no pattern wider than its own key space.
        f"({keyspace} +psubscribe +punsubscribe +subscribe +unsubscribe)",
    ]


def _service_commands() -> list[str]:
    return ["+@read", "+@write", "+@scripting", "+@transaction", "+@connection", "+@pubsub",
            "+@keyspace", "+@list", "+@hash", "+@sortedset", "+@stream", "+@string", "+@set",
            "-@dangerous", "-@admin", "+client|setname", "+scan"]  # fmt: skip


def approval_rules() -> list[str]:
    # The keyspace channels of pending sets and decisions, for live updates (approval/events.py;
    # PSUBSCRIBE patterns are checked literally against these). Database 0 and 1-15 alike.
    live = [f"&__keyspace@{db}__:{redis_keys.PREFIX}:s:*:{what}" for db in range(16)
            for what in ("pending", "decision:*", "review:*")]  # fmt: skip
    return ["reset", f"~{redis_keys.PREFIX}:*", *live, *_service_commands()]


def worker_rules() -> list[str]:
    every = f"{redis_keys.PREFIX}:s:*:"
    return [
        "reset",
        "~rq:*",
        "&rq:*",
        f"%R~{every}*",
        f"~{every}record:*",
        f"~{every}review:*",  # its decisions: under this key alone, which names it
        f"~{every}wake:*",
        f"~{every}pending",
        f"~{every}handled:*",
        f"~{redis_keys.INBOX}",
        f"~{redis_keys.HISTORY}",
        f"&{every}notices",
        *_service_commands(),
    ]


def admin_rules() -> list[str]:
    return ["reset", "~*", "&*", "+@all"]


def rules(user: str) -> list[str]:
    if user == ADMIN:
        return admin_rules()
    if user == APPROVAL:
        return approval_rules()
    if user == WORKER:
        return worker_rules()
    raise ValueError(f"no fixed rules for {user!r}")


def acl_file(credentials: list[Credential]) -> str:
    """The ACL file the Redis container starts with: the service users, default off.

    Passwords are stored as SHA-256 (`#...`), so the file in the container holds no secret."""
    import hashlib

    lines = ["user default off resetkeys resetchannels -@all"]
    for credential in credentials:
        digest = hashlib.sha256(credential.password.encode()).hexdigest()
        lines.append(
            " ".join(["user", credential.user, *rules(credential.user), "on", f"#{digest}"])
        )
    return "\n".join(lines) + "\n"
