"""Where the channel keeps things in Redis (one place, so both sides and the ACLs agree).

Everything of one session lives under `ironcurtain:esc:s:<session>:`, so a Redis user per session
(acl.py) can be confined to its own keys by pattern. An escalation id names its session
(`<session>.<random>`), so a decider finds the keys from the id alone and no session ever writes a
key shared with another. The only shared key a session may touch is the inbox, push only.
"""

from __future__ import annotations

import re

PREFIX = "ironcurtain:esc"
QUEUE = "escalations"  # the RQ queue the worker's jobs go to (only the worker enqueues)

SESSIONS = f"{PREFIX}:sessions"  # zset: session id -> registered at (host CLI, admin)
HISTORY = f"{PREFIX}:history"  # stream of decisions, bounded (approval service, worker)
INBOX = f"{PREFIX}:inbox"  # list of new escalation ids: sessions push, the worker pops
# zset, the pending listing's index: session id -> 0 while the session may escalate, or the time
# it ended. Written by the admin only (where a session's user is made, put back and removed): a
# session's user cannot touch it, so no session can hide another's escalations or flood it.
OPEN = f"{PREFIX}:open"
ACL_USERS = "ironcurtain:acl:sessions"  # hash: redis user -> JSON (who made it, when; admin)

# A session id as it may appear in a key pattern: no glob characters, no separators.
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
ESCALATION_ID = re.compile(r"([A-Za-z0-9_-]{1,64})\.([0-9a-f]{16})")


def check_session(session_id: str) -> str:
    if not SESSION_ID.fullmatch(session_id):
        raise ValueError(f"not a session id: {session_id[:80]!r}")
    return session_id


def session_of(escalation_id: str) -> str:
    """The session an escalation id names; ValueError for anything else (URLs are hostile)."""
    match = ESCALATION_ID.fullmatch(escalation_id)
    if match is None:
        raise ValueError(f"not an escalation id: {escalation_id[:80]!r}")
    return match.group(1)


def space(session_id: str) -> str:
    """The prefix of every key of one session (what its Redis user may touch)."""
    return f"{PREFIX}:s:{check_session(session_id)}:"


def record(escalation_id: str) -> str:
    return f"{space(session_of(escalation_id))}record:{escalation_id}"


def decision(escalation_id: str) -> str:
    return f"{space(session_of(escalation_id))}decision:{escalation_id}"


def review(escalation_id: str) -> str:
    """The auto-reviewer's decision (the worker's user writes this key, never `decision`): the
    key, not the body, says who decided, and the proxy honours it only while the session's
    auto-reviewer is on."""
    return f"{space(session_of(escalation_id))}review:{escalation_id}"


def wake(escalation_id: str) -> str:
    """A list the waiting call blocks on (BLPOP); deciding pushes one element."""
    return f"{space(session_of(escalation_id))}wake:{escalation_id}"


def handled(escalation_id: str) -> str:
    """Set (NX) by the worker the first time an inbox line names the escalation: a session
    pushing the same line again gets no second notice, job or history entry. Worker only."""
    return f"{space(session_of(escalation_id))}handled:{escalation_id}"


def pending(session_id: str) -> str:
    """Zset: the session's open escalation ids -> created_at."""
    return f"{space(session_id)}pending"


def session(session_id: str) -> str:
    """Hash: worktree, agent, task, as `ironcurtain run` registered them (admin)."""
    return f"{space(session_id)}info"


def remembered(session_id: str) -> str:
    """Hash: scope id -> scope JSON, the session's approve-and-remember scopes."""
    return f"{space(session_id)}remember"


def notices(session_id: str) -> str:
    """Pub/sub channel: terminal lines for the session's `make up` output."""
    return f"{space(session_id)}notices"


def autoreview(session_id: str) -> str:
    """ "on" while the session's auto-reviewer may approve (absent: off, the default)."""
    return f"{space(session_id)}autoreview"


def session_of_key(key: str) -> str | None:
    """The session of a per-session key found by SCAN (None for anything unexpected)."""
    head = f"{PREFIX}:s:"
    if not key.startswith(head):
        return None
    session_id = key[len(head) :].split(":", 1)[0]
    return session_id if SESSION_ID.fullmatch(session_id) else None
