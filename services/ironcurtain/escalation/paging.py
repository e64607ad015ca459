"""Pages of the pending list (pure): the query as typed data, keyset cursors, the k-way merge.

Every session keeps its open escalations in a sorted set scored by deadline (redis_keys.pending). A
page is the first `limit` entries, across all sessions, after a cursor, in (deadline, id) order
or its reverse. A keyset cursor (the last row's deadline and id) keeps every entry reachable
exactly once while others arrive and leave, which page numbers would not.
"""

from __future__ import annotations

import enum
import heapq
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from . import redis_keys

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
PARAMETERS = frozenset({"limit", "cursor", "order", "session", "worktree"})
_WORKTREE = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
# A deadline as repr() writes it, `~`, an id (compared only, never used as a key).
_CURSOR = re.compile(r"(-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)~([A-Za-z0-9_.-]{1,100})")


class Order(enum.Enum):
    LATEST = "latest"  # latest deadline first (the newest, for equal timeouts): the default
    SOONEST = "soonest"  # the oldest deadline first: what runs out next


class BadParameter(ValueError):
    """A query parameter we refuse; names it, for a 400 answer."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """The last row of a page: (deadline, escalation id)."""

    score: float
    escalation_id: str

    def encode(self) -> str:
        return f"{self.score!r}~{self.escalation_id}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        match = _CURSOR.fullmatch(text)
        if match is None:
            raise BadParameter("cursor", "not a cursor of ours (take `next` from a page)")
        score = float(match.group(1))
        if not math.isfinite(score):
            raise BadParameter("cursor", "not a cursor of ours (take `next` from a page)")
        return cls(score, match.group(2))


@dataclass(frozen=True, slots=True)
class PageQuery:
    limit: int = DEFAULT_LIMIT
    cursor: Cursor | None = None
    order: Order = Order.LATEST
    session: str = ""
    worktree: str = ""

    @classmethod
    def parse(cls, args: Mapping[str, str] | Iterable[tuple[str, str]]) -> PageQuery:
        """From query parameters: an allowlist; anything unknown, repeated or malformed is
        refused naming the parameter."""
        pairs = list(args.items()) if isinstance(args, Mapping) else list(args)
        seen: dict[str, str] = {}
        for name, value in pairs:
            if name not in PARAMETERS:
                allowed = ", ".join(sorted(PARAMETERS))
                raise BadParameter(name[:40], f"unknown parameter (allowed: {allowed})")
            if name in seen:
                raise BadParameter(name, "given more than once")
            seen[name] = value
        limit = DEFAULT_LIMIT
        if seen.get("limit", ""):
            text = seen["limit"]
            if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
                raise BadParameter("limit", f"a whole number from 1 to {MAX_LIMIT}")
            limit = int(text)
        try:
            order = Order(seen.get("order") or Order.LATEST.value)
        except ValueError:
            raise BadParameter("order", "latest or soonest") from None
        cursor = Cursor.decode(seen["cursor"]) if seen.get("cursor") else None
        session = seen.get("session", "")
        if session and not redis_keys.SESSION_ID.fullmatch(session):
            raise BadParameter("session", "not a session id")
        worktree = seen.get("worktree", "")
        if worktree and not _WORKTREE.fullmatch(worktree):
            raise BadParameter("worktree", "1-200 characters, no control characters")
        return cls(limit, cursor, order, session, worktree)

    def after(self, cursor: Cursor | None) -> dict[str, str]:
        """The query parameters of the page after `cursor` (same filters and order)."""
        params = {"order": self.order.value, "limit": str(self.limit)}
        if self.session:
            params["session"] = self.session
        if self.worktree:
            params["worktree"] = self.worktree
        if cursor is not None:
            params["cursor"] = cursor.encode()
        return params


def beyond(entry: Cursor, cursor: Cursor | None, order: Order) -> bool:
    """Whether `entry` comes after `cursor` in `order`."""
    if cursor is None:
        return True
    return entry > cursor if order is Order.SOONEST else entry < cursor


def merge(
    runs: Iterable[Iterable[Cursor]], cursor: Cursor | None, order: Order, limit: int
) -> list[Cursor]:
    """The first `limit` entries past `cursor` of the runs (each already in `order`)."""
    wanted = (
        (e for e in run if beyond(e, cursor, order)) for run in runs
    )  # every run's own order is kept; heapq.merge interleaves them
    merged = heapq.merge(*wanted, reverse=order is Order.LATEST)
    found: list[Cursor] = []
    for entry in merged:
        found.append(entry)
        if len(found) >= limit:
            break
    return found


@dataclass(frozen=True, slots=True)
class Page:
    """A page's entries, whether more follow, and how many are pending in all (filters on)."""

    entries: tuple[Cursor, ...]
    more: bool
    total: int

    @property
    def next(self) -> Cursor | None:
        return self.entries[-1] if self.more and self.entries else None
