"""The escalation channel over Redis: store, notify (RQ), wait without polling, decide first-wins.

Synchronous on purpose: the approval service, the RQ worker and the CLI call it directly; the MCP
proxy's async RedisEscalator runs it in a small bounded thread pool. The Redis client is passed
in (see `connect`); redis errors propagate as `redis.RedisError` for the caller to fail closed.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue

from . import keys
from .record import DEADLINE, Decision, Escalation, new_id
from .remember import Scope
from .script import DECIDE
from .types import EscalationRequest, Verdict

logger = logging.getLogger(__name__)

NOTIFY_JOB = "ironcurtain.escalation.notify.notify"
REVIEW_JOB = "ironcurtain.english.review.review"  # the optional auto-reviewer (off by default)
DEFAULT_RETENTION_S = 24 * 3600  # records, decisions and remembered scopes
DEFAULT_HISTORY_MAXLEN = 10_000
WAIT_GRACE_S = 2.0  # a blocked read may take this much longer than its BLPOP timeout
ABANDONED_AFTER_S = 30.0  # past its deadline by this much, nobody waits for it any more


def connect(
    url: str,
    password_file: Path | str | None = None,
    *,
    password: str | None = None,
    connect_timeout_s: float = 2.0,
    timeout_s: float = 5.0,
) -> redis.Redis:
    """A client that fails fast: short timeouts, no retries (a down Redis means deny at once).

    The pool reconnects on the next command, so a Redis that comes back works without restarts.
    """
    if password_file:
        password = Path(password_file).read_text().strip()
    return redis.Redis.from_url(
        url,
        password=password,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        decode_responses=False,  # RQ needs bytes
    )


class Outcome(enum.Enum):
    DECIDED = "decided"  # this decision was recorded
    ALREADY = "already"  # someone decided first: this one was refused
    LATE = "late"  # after the deadline: refused, recorded as expired
    MISSING = "missing"  # no such escalation (or retention ran out)


@dataclass(frozen=True, slots=True)
class Ruling:
    """What a decide() call achieved, and the decision that stands."""

    outcome: Outcome
    decision: Decision | None

    @property
    def accepted(self) -> bool:
        return self.outcome is Outcome.DECIDED


@dataclass(frozen=True, slots=True)
class SessionInfo:
    session_id: str
    worktree: str
    agent: str
    task: str
    last_seen: float
    escalations: int
    pending: int
    remembered: tuple[Scope, ...]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    escalation: Escalation
    decision: Decision


class Channel:
    def __init__(
        self,
        client: redis.Redis,
        *,
        clock: Callable[[], float] = time.time,
        retention_s: int = DEFAULT_RETENTION_S,
        history_maxlen: int = DEFAULT_HISTORY_MAXLEN,
    ) -> None:
        self.redis = client
        self._clock = clock
        self._retention_s = retention_s
        self._history_maxlen = history_maxlen
        self._decide = client.register_script(DECIDE)
        self._queue = Queue(keys.QUEUE, connection=client)

    # -- the asking side (MCP proxy) -------------------------------------------------------

    def create(self, request: EscalationRequest, timeout_s: float) -> Escalation:
        """Store the escalation, list it as pending and enqueue its notification job."""
        escalation = Escalation.from_request(
            request, id=new_id(), now=self._clock(), timeout_s=timeout_s
        )
        ttl = int(timeout_s) + self._retention_s
        session = {
            "worktree": escalation.worktree,
            "agent": escalation.agent,
            "task": escalation.task,
            "last_seen": str(escalation.created_at),
        }
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.record(escalation.id), escalation.to_json(), ex=ttl)
            pipe.zadd(keys.PENDING, {escalation.id: escalation.created_at})
            pipe.zadd(keys.SESSIONS, {escalation.session_id: escalation.created_at})
            pipe.hset(keys.session(escalation.session_id), mapping=session)
            pipe.hincrby(keys.session(escalation.session_id), "escalations", 1)
            pipe.expire(keys.session(escalation.session_id), ttl)
            pipe.execute()
        try:  # after the record is stored: the job reads it
            self._queue.enqueue(
                NOTIFY_JOB,
                escalation.id,
                job_timeout=30,
                ttl=max(1, int(timeout_s)),  # a notice after the deadline is noise
                result_ttl=60,
                failure_ttl=self._retention_s,
            )
        except redis.RedisError:
            raise
        except Exception:  # notifications are a courtesy: the UI still lists it
            logger.exception("could not enqueue the notification for escalation %s", escalation.id)
        if self.auto_review(escalation.session_id):
            try:  # it may only approve, first-wins; without it a human decides as always
                self._queue.enqueue(
                    REVIEW_JOB,
                    escalation.id,
                    job_timeout=max(1, int(timeout_s)),
                    ttl=max(1, int(timeout_s)),
                    result_ttl=60,
                    failure_ttl=self._retention_s,
                )
            except redis.RedisError:
                raise
            except Exception:
                logger.exception("could not enqueue the auto-review of %s", escalation.id)
        return escalation

    # -- the auto-reviewer switch (per session, off unless a human turned it on) -----------

    def auto_review(self, session_id: str) -> bool:
        return self.redis.get(keys.autoreview(session_id)) == b"on"

    def set_auto_review(self, session_id: str, on: bool) -> None:
        if on:
            self.redis.set(keys.autoreview(session_id), "on", ex=self._retention_s)
        else:
            self.redis.delete(keys.autoreview(session_id))

    def wait(self, escalation: Escalation) -> Decision:
        """Block (BLPOP, no polling) until decided or the deadline; then expire it, first-wins."""
        remaining = escalation.deadline - self._clock()
        if remaining > 0:
            self._block(keys.wake(escalation.id), remaining)
        raw = self.redis.get(keys.decision(escalation.id))
        if raw is not None:
            return Decision.from_json(raw)
        ruling = self.decide(escalation.id, Verdict.EXPIRED, by=DEADLINE, expiry=True)
        if ruling.decision is None:
            raise LookupError(f"escalation {escalation.id} vanished while waiting")
        return ruling.decision

    def _block(self, key: str, timeout_s: float) -> None:
        # A dedicated read deadline for this one blocking command: the client's socket timeout
        # is short (fail fast), the BLPOP is as long as the escalation's deadline.
        pool = self.redis.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_command("BLPOP", key, f"{timeout_s:.3f}")
            conn.read_response(timeout=timeout_s + WAIT_GRACE_S)
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)

    # -- the deciding side (approval service, CLI) -----------------------------------------

    def decide(
        self,
        escalation_id: str,
        verdict: Verdict,
        *,
        by: str,
        reason: str = "",
        remember: Scope | None = None,
        expiry: bool = False,
    ) -> Ruling:
        if verdict not in (Verdict.APPROVED, Verdict.DENIED, Verdict.EXPIRED):
            raise ValueError(f"cannot decide {verdict.value}")
        if remember is not None and verdict is not Verdict.APPROVED:
            raise ValueError("only an approval can be remembered")
        now = self._clock()
        decision = Decision(escalation_id, verdict, by, now, reason, remember)
        expired = Decision(escalation_id, Verdict.EXPIRED, DEADLINE, now)
        escalation = self.get(escalation_id)
        session_id = escalation.session_id if escalation else ""
        result = self._decide(
            keys=[
                keys.record(escalation_id),
                keys.decision(escalation_id),
                keys.wake(escalation_id),
                keys.PENDING,
                keys.HISTORY,
                keys.remembered(session_id),
            ],
            args=[
                decision.to_json(),
                repr(now),
                expired.to_json(),
                "1" if expiry else "0",
                self._retention_s,
                self._history_maxlen,
                escalation_id,
                remember.id if remember else "",
                remember.to_json() if remember else "",
                session_id,
                verdict.value,
            ],
        )
        status = result[0].decode() if isinstance(result[0], bytes) else result[0]
        standing = Decision.from_json(result[1]) if result[1] else None
        outcome = {
            "ok": Outcome.DECIDED,
            "decided": Outcome.ALREADY,
            "late": Outcome.LATE,
            "missing": Outcome.MISSING,
        }[status]
        return Ruling(outcome, standing)

    # -- reading ---------------------------------------------------------------------------

    def get(self, escalation_id: str) -> Escalation | None:
        raw = self.redis.get(keys.record(escalation_id))
        return Escalation.from_json(raw) if raw is not None else None

    def decision(self, escalation_id: str) -> Decision | None:
        raw = self.redis.get(keys.decision(escalation_id))
        return Decision.from_json(raw) if raw is not None else None

    def pending(self, limit: int = 1000) -> list[Escalation]:
        """Open escalations, newest first; ones whose record is gone are dropped from the list."""
        ids = [i.decode() for i in self.redis.zrevrange(keys.PENDING, 0, limit - 1)]
        if not ids:
            return []
        raws = self.redis.mget([keys.record(i) for i in ids])
        found = []
        now = self._clock()
        for escalation_id, raw in zip(ids, raws, strict=True):
            if raw is None:
                self.redis.zrem(keys.PENDING, escalation_id)
                continue
            escalation = Escalation.from_json(raw)
            if now > escalation.deadline + ABANDONED_AFTER_S:
                # Its waiter is gone (a proxy that died): record the expiry it would have.
                self.decide(escalation_id, Verdict.EXPIRED, by=DEADLINE, expiry=True)
                continue
            found.append(escalation)
        return found

    def history(
        self,
        *,
        session_id: str = "",
        verdict: str = "",
        text: str = "",
        limit: int = 200,
        scan: int = 2000,
    ) -> list[HistoryEntry]:
        """Decisions, newest first, filtered; reads at most `scan` stream entries (bounded)."""
        found: list[HistoryEntry] = []
        needle = text.lower()
        for _id, fields in self.redis.xrevrange(keys.HISTORY, count=scan):
            if session_id and fields.get(b"session_id", b"").decode() != session_id:
                continue
            if verdict and fields.get(b"verdict", b"").decode() != verdict:
                continue
            entry = HistoryEntry(
                Escalation.from_json(fields[b"escalation"]), Decision.from_json(fields[b"decision"])
            )
            if needle and needle not in _haystack(entry):
                continue
            found.append(entry)
            if len(found) >= limit:
                break
        return found

    def sessions(self, limit: int = 200) -> list[SessionInfo]:
        ids = [i.decode() for i in self.redis.zrevrange(keys.SESSIONS, 0, limit - 1)]
        pending_by_session: dict[str, int] = {}
        for escalation in self.pending():
            pending_by_session[escalation.session_id] = (
                pending_by_session.get(escalation.session_id, 0) + 1
            )
        found = []
        for session_id in ids:
            raw = self.redis.hgetall(keys.session(session_id))
            info = {k.decode(): v.decode() for k, v in raw.items()}
            if not info:
                continue
            found.append(
                SessionInfo(
                    session_id=session_id,
                    worktree=info.get("worktree", ""),
                    agent=info.get("agent", ""),
                    task=info.get("task", ""),
                    last_seen=float(info.get("last_seen", "0")),
                    escalations=int(info.get("escalations", "0")),
                    pending=pending_by_session.get(session_id, 0),
                    remembered=tuple(self.remembered(session_id)),
                )
            )
        return found

    # -- approve and remember --------------------------------------------------------------

    def remembered(self, session_id: str) -> list[Scope]:
        scopes = []
        for raw in self.redis.hvals(keys.remembered(session_id)):
            try:
                scopes.append(Scope.from_json(raw))
            except ValueError:
                logger.warning("ignoring a malformed remembered scope in session %s", session_id)
        return scopes

    def revoke(self, session_id: str, scope_id: str) -> bool:
        return bool(self.redis.hdel(keys.remembered(session_id), scope_id))

    def record_remembered(self, escalation: Escalation, scope: Scope) -> Decision:
        """An escalation approved by a remembered scope: kept in the history like any decision."""
        decision = Decision(
            escalation.id, Verdict.APPROVED, f"remembered:{scope.id}", self._clock(),
            f"approved earlier for {scope.describe()}", scope,
        )  # fmt: skip
        self.redis.xadd(
            keys.HISTORY,
            {
                "id": escalation.id,
                "session_id": escalation.session_id,
                "verdict": decision.verdict.value,
                "escalation": escalation.to_json(),
                "decision": decision.to_json(),
            },
            maxlen=self._history_maxlen,
            approximate=False,
        )
        return decision

    # -- notices for the session's terminal ------------------------------------------------

    def announce(self, session_id: str, line: str) -> int:
        return int(self.redis.publish(keys.notices(session_id), line))

    def follow(self, session_id: str, *, timeout_s: float = 1.0) -> Iterator[str | None]:
        """A session's terminal lines as they come (None each timeout_s, so callers can stop)."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(keys.notices(session_id))
        try:
            while True:
                message = pubsub.get_message(timeout=timeout_s)
                yield message["data"].decode() if message else None
        finally:
            pubsub.close()


def _haystack(entry: HistoryEntry) -> str:
    e, d = entry.escalation, entry.decision
    parts: list[Any] = [e.id, e.session_id, e.worktree, e.server, e.tool, e.rule, e.reason, d.by]
    parts += [d.reason, json.dumps(e.arguments)]
    return " ".join(str(p) for p in parts).lower()
