"""Where the channel keeps things in Redis (one place, so both sides agree)."""

from __future__ import annotations

PREFIX = "ironcurtain:esc"
QUEUE = "escalations"  # the RQ queue the notify jobs go to

PENDING = f"{PREFIX}:pending"  # zset: id -> created_at
SESSIONS = f"{PREFIX}:sessions"  # zset: session id -> last seen
HISTORY = f"{PREFIX}:history"  # stream of decisions, bounded (MAXLEN ~)


def record(escalation_id: str) -> str:
    return f"{PREFIX}:record:{escalation_id}"


def decision(escalation_id: str) -> str:
    return f"{PREFIX}:decision:{escalation_id}"


def wake(escalation_id: str) -> str:
    """A list the waiting call blocks on (BLPOP); deciding pushes one element."""
    return f"{PREFIX}:wake:{escalation_id}"


def session(session_id: str) -> str:
    return f"{PREFIX}:session:{session_id}"


def remembered(session_id: str) -> str:
    """Hash: scope id -> scope JSON, the session's approve-and-remember scopes."""
    return f"{PREFIX}:remember:{session_id}"


def notices(session_id: str) -> str:
    """Pub/sub channel: terminal lines for the session's `make up` output."""
    return f"{PREFIX}:notices:{session_id}"


def autoreview(session_id: str) -> str:
    """ "on" while the session's auto-reviewer may approve (absent: off, the default)."""
    return f"{PREFIX}:autoreview:{session_id}"
