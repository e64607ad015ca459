"""The escalation channel over Redis: store, notify (RQ), wait without polling, decide first-wins.

Synchronous on purpose: the approval service, the RQ worker and the CLI call it directly; the MCP
proxy's async RedisEscalator runs it in a small bounded thread pool. The Redis client is passed
in (see `connect`); redis errors propagate as `redis.RedisError` for the caller to fail closed.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.connection import Connection
from redis.retry import Retry
from redis.typing import EncodableT, FieldT

from . import redis_keys, tls
from .acl import Credential
from .labels import FIELDS as LABEL_FIELDS
from .labels import Registration
from .paging import Cursor, Order, Page, PageQuery, merge
from .paging import beyond as paging_beyond
from .record import AUTO_REVIEWER, DEADLINE, Decision, Escalation, Invalid, new_id, read_record
from .remember import Scope
from .replies import text as reply_text
from .script import DECIDE
from .types import EscalationRequest, Verdict

logger = logging.getLogger(__name__)

DEFAULT_RETENTION_S = 24 * 3600  # records, decisions and remembered scopes
DEFAULT_HISTORY_MAXLEN = 10_000
WAIT_GRACE_S = 2.0  # a blocked read may take this much longer than its BLPOP timeout
# The waiting proxy reads the decision this long after the deadline (deciders refuse anything
# after the deadline, so a decision it reads then is final); the approval service records the
# expiry of anything past its deadline by more than this.
SETTLE_S = 0.5
ABANDONED_AFTER_S = 2.0


def read_credential(path: Path | str) -> Credential:
    """A Redis credential file (`USER PASSWORD`); OSError or ValueError if it is unusable."""
    return Credential.parse(Path(path).read_text())


def connect(
    url: str,
    credential_file: Path | str | None = None,
    *,
    ca_file: Path | str,
    credential: Credential | None = None,
    address: str | None = None,
    connect_timeout_s: float = 2.0,
    timeout_s: float = 5.0,
    retries: int = 0,
) -> redis.Redis:
    """A client that fails fast: short timeouts, no retries (a down Redis means deny at once;
    `retries` for a service whose commands may be sent twice, so a restarted Redis costs it no
    failed request on the dead connection).

    TLS only (`rediss://`), checked against the team CA file and the URL's host name (tls.py);
    `address` dials another address (a container's IP) while checking that name. Every client
    names its Redis user (the `default` user is off). The pool reconnects on the next command,
    so a Redis that comes back works without restarts. ValueError for a URL that is not
    `rediss://`, OSError or ssl.SSLError for an unusable CA file: before any connection.
    """
    endpoint = tls.Endpoint.parse(url)
    if credential_file:
        credential = read_credential(credential_file)
    pool = redis.ConnectionPool(
        connection_class=TLSConnection,
        tls_context=tls.context(ca_file),
        tls_name=endpoint.host,
        host=address or endpoint.host,
        port=endpoint.port,
        db=endpoint.db,
        username=credential.user if credential else None,
        password=credential.password if credential else None,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), retries),
        decode_responses=False,  # RQ needs bytes
    )
    return redis.Redis.from_pool(pool)  # owns the pool: close() closes its sockets


class TLSConnection(Connection):
    """A redis-py connection that speaks TLS with our context (tls.py), checking `tls_name`."""

    def __init__(self, *, tls_context: ssl.SSLContext, tls_name: str, **kwargs: Any) -> None:
        self._tls_context = tls_context
        self._tls_name = tls_name
        super().__init__(**kwargs)

    def _connect(self) -> socket.socket:
        sock = super()._connect()
        try:
            return self._tls_context.wrap_socket(sock, server_hostname=self._tls_name)
        except OSError:
            sock.close()
            raise


class Outcome(enum.Enum):
    DECIDED = "decided"  # this decision was recorded
    ALREADY = "already"  # someone decided first: this one was refused
    LATE = "late"  # after the deadline: refused, recorded as expired
    MISSING = "missing"  # no such escalation (or retention ran out)
    INVALID = "invalid"  # the record is forged or malformed: never decided
    CHANGED = "changed"  # the record changed between reading and deciding: refused


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

    # -- the asking side (MCP proxy) -------------------------------------------------------

    def create(self, request: EscalationRequest, timeout_s: float) -> Escalation:
        """Store the escalation in the session's own keys and push its id onto the inbox (the
        worker notifies; the approval service lists every session's pending set).

        Only keys of the request's session: what a session's Redis user may write (acl.py)."""
        escalation = Escalation.from_request(
            request, id=new_id(request.session_id), now=self._clock(), timeout_s=timeout_s
        )
        ttl = int(timeout_s) + self._retention_s
        pending = redis_keys.pending(escalation.session_id)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(redis_keys.record(escalation.id), escalation.to_json(), ex=ttl)
            pipe.zadd(pending, {escalation.id: escalation.deadline})  # pages go by deadline
            pipe.expire(pending, ttl)
            pipe.rpush(redis_keys.INBOX, escalation.id)
            pipe.execute()
        return escalation

    def register(self, session_id: str, *, worktree: str, agent: str, task: str) -> None:
        """The session as `ironcurtain run` started it (admin): what the sessions page shows."""
        info: dict[FieldT, EncodableT] = {
            "worktree": worktree,
            "agent": agent,
            "task": task,
            "last_seen": repr(self._clock()),
        }
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(redis_keys.SESSIONS, {session_id: self._clock()})
            pipe.zadd(redis_keys.OPEN, {session_id: 0})
            pipe.hset(redis_keys.session(session_id), mapping=info)
            pipe.expire(redis_keys.session(session_id), self._retention_s)
            pipe.execute()

    def registrations(self, session_ids: list[str]) -> dict[str, Registration]:
        """The labels these sessions were registered with (one pipelined read: a page reads
        this once for the sessions on it). A session with no registration, a hash of another
        type or one lacking a field is absent: its labels are unverified (labels.py)."""
        wanted = [s for s in dict.fromkeys(session_ids) if redis_keys.SESSION_ID.fullmatch(s)]
        if not wanted:
            return {}
        with self.redis.pipeline(transaction=False) as pipe:
            for session_id in wanted:
                pipe.hmget(redis_keys.session(session_id), list(LABEL_FIELDS))
            answers = pipe.execute(raise_on_error=False)
        found = {s: Registration.parse(a) for s, a in zip(wanted, answers, strict=True)}
        return {s: r for s, r in found.items() if r is not None}

    # -- the auto-reviewer switch (per session, off unless a human turned it on) -----------

    def auto_review(self, session_id: str) -> bool:
        try:
            key = redis_keys.autoreview(session_id)
        except ValueError:
            return False
        return self.redis.get(key) == b"on"

    def auto_reviewed(self, session_ids: list[str]) -> set[str]:
        """Which of these sessions have their auto-reviewer on (one pipelined read)."""
        wanted = [s for s in dict.fromkeys(session_ids) if redis_keys.SESSION_ID.fullmatch(s)]
        if not wanted:
            return set()
        with self.redis.pipeline(transaction=False) as pipe:
            for session_id in wanted:
                pipe.get(redis_keys.autoreview(session_id))
            found = pipe.execute()
        return {s for s, v in zip(wanted, found, strict=True) if v == b"on"}

    def set_auto_review(self, session_id: str, on: bool) -> None:
        if on:
            self.redis.set(redis_keys.autoreview(session_id), "on", ex=self._retention_s)
        else:
            self.redis.delete(redis_keys.autoreview(session_id))

    def wait(self, escalation: Escalation) -> Decision:
        """Block (BLPOP, no polling) until decided or just past the deadline. No decision then
        is an expiry (kept locally: a session writes no decisions; the approval service records
        it in the history when it next lists the pending ones)."""
        remaining = escalation.deadline + SETTLE_S - self._clock()
        if remaining > 0:
            self._block(redis_keys.wake(escalation.id), remaining)
        found = self._standing(escalation.id)
        if found is not None:
            return found
        return Decision(escalation.id, Verdict.EXPIRED, DEADLINE, self._clock())

    def _standing(self, escalation_id: str) -> Decision | None:
        """The decision stored for the escalation: a person's (or the deadline's) under
        `decision`, else the auto-reviewer's under `review` — named by that key, whatever its
        body says. ValueError for a malformed one. (Two GETs: a session's user has no MGET.)"""
        raw = self.redis.get(redis_keys.decision(escalation_id))
        if raw is not None:
            return Decision.from_json(raw)
        raw = self.redis.get(redis_keys.review(escalation_id))
        if raw is None:
            return None
        found = Decision.from_json(raw)
        by = DEADLINE if found.verdict is Verdict.EXPIRED else AUTO_REVIEWER
        return dataclasses.replace(found, by=by)

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
        shown_digest: str | None = None,
    ) -> Ruling:
        """Decide on the record as read now: the decision names its digest, and the script
        refuses if the record changed since (check and effect on the same bytes).

        `shown_digest`: the digest of the record as shown to the human; CHANGED, nothing
        decided, if the record read now has another. Atomic with the decision: the script
        compares the stored bytes with exactly the bytes whose digest was compared here."""
        if verdict not in (Verdict.APPROVED, Verdict.DENIED, Verdict.EXPIRED):
            raise ValueError(f"cannot decide {verdict.value}")
        if remember is not None and verdict is not Verdict.APPROVED:
            raise ValueError("only an approval can be remembered")
        try:
            session_id = redis_keys.session_of(escalation_id)
        except ValueError:
            return Ruling(Outcome.MISSING, None)
        raw = self.redis.get(redis_keys.record(escalation_id))
        if raw is None:
            return Ruling(Outcome.MISSING, None)
        found = read_record(escalation_id, raw)
        if isinstance(found, Invalid):
            if expiry:  # off the pending list; nothing is decided on a forged record
                self.redis.zrem(redis_keys.pending(session_id), escalation_id)
            return Ruling(Outcome.INVALID, None)
        now = self._clock()
        digest = found.digest()
        if shown_digest is not None and digest != shown_digest:
            return Ruling(Outcome.CHANGED, None)  # rewritten since the human was shown it
        decision = Decision(escalation_id, verdict, by, now, reason, remember, digest)
        expired = Decision(escalation_id, Verdict.EXPIRED, DEADLINE, now, request_digest=digest)
        # The auto-reviewer decides under a key of its own (the worker's user may write no
        # other); a person, or the deadline, under `decision`. Each script reads both.
        mine, other = redis_keys.decision(escalation_id), redis_keys.review(escalation_id)
        if by == AUTO_REVIEWER:
            mine, other = other, mine
        touched = [
            redis_keys.record(escalation_id),
            mine,
            redis_keys.wake(escalation_id),
            redis_keys.pending(session_id),
            redis_keys.HISTORY,
        ]
        if remember is not None:  # only then: the worker's user may not touch remembered scopes
            touched.append(redis_keys.remembered(session_id))
        result = self._decide(
            keys=touched,
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
                raw,
                repr(found.deadline),
                other,
                found.history_json(),
            ],
        )
        status = result[0].decode() if isinstance(result[0], bytes) else result[0]
        standing = Decision.from_json(result[1]) if result[1] else None
        outcome = {
            "ok": Outcome.DECIDED,
            "decided": Outcome.ALREADY,
            "late": Outcome.LATE,
            "missing": Outcome.MISSING,
            "changed": Outcome.CHANGED,
        }[status]
        return Ruling(outcome, standing)

    # -- reading ---------------------------------------------------------------------------

    def get(self, escalation_id: str) -> Escalation | Invalid | None:
        """The record under that id: an Escalation, Invalid (forged or malformed), or None."""
        try:
            key = redis_keys.record(escalation_id)
        except ValueError:
            return None
        raw = self.redis.get(key)
        return read_record(escalation_id, raw) if raw is not None else None

    def decision(self, escalation_id: str) -> Decision | None:
        try:
            redis_keys.session_of(escalation_id)
        except ValueError:
            return None
        try:
            found = self._standing(escalation_id)
        except ValueError:
            logger.warning("ignoring a malformed decision on %s", escalation_id)
            return None
        return found if found is not None and found.escalation_id == escalation_id else None

    def _open_sessions(self) -> list[str]:
        """The sessions whose pending sets a listing reads: the index (redis_keys.OPEN), never a
        scan of the key space. Ended sessions whose pending set is empty are dropped from it
        here."""
        # withscores: (member, score) pairs, which redis-py's stubs do not narrow to
        entries = cast(
            list[tuple[bytes, float]], self.redis.zrange(redis_keys.OPEN, 0, -1, withscores=True)
        )
        found = [(reply_text(m, errors="replace"), float(score)) for m, score in entries]
        found = [(m, score) for m, score in found if redis_keys.SESSION_ID.fullmatch(m)]
        ended = [m for m, score in found if score > 0]
        if ended:
            counts = self._zcards(ended)
            done = [s for s, n in zip(ended, counts, strict=True) if not n]
            if done:
                self.redis.zrem(redis_keys.OPEN, *done)
            gone = set(done)
            found = [(m, score) for m, score in found if m not in gone]
        return sorted(m for m, _ in found)

    def _zcards(self, sessions: list[str]) -> list[int]:
        """Each session's pending count. A session's own user can write its pending key as any
        type (a string, say): such a session counts 0 and lists nothing (every read of pending
        sets here tolerates a wrong type), never breaking the listing for everyone."""
        with self.redis.pipeline(transaction=False) as pipe:
            for session_id in sessions:
                pipe.zcard(redis_keys.pending(session_id))
            answers = pipe.execute(raise_on_error=False)
        return [0 if isinstance(n, Exception) else int(n) for n in answers]

    def _sessions_pending(self, query: PageQuery) -> list[str]:
        """The sessions whose pending sets the query looks at (filters applied)."""
        found = [query.session] if query.session else self._open_sessions()
        if query.worktree and found:
            # The worktree the host CLI registered (admin), not what a record claims.
            registered = self.registrations(found)
            found = [
                s for s in found if s in registered and registered[s].worktree == query.worktree
            ]
        return found

    def _runs(self, sessions: list[str], query: PageQuery) -> list[list[Cursor]]:
        """Per session, its entries past the cursor in order, at least limit + 1 when it has
        that many (one pipelined round; more only for ties with the cursor's deadline)."""
        want = query.limit + 1
        cursor, soonest = query.cursor, query.order is Order.SOONEST
        runs: dict[str, list[Cursor]] = {s: [] for s in sessions}
        offsets = dict.fromkeys(sessions, 0)
        todo = list(sessions)
        while todo:
            with self.redis.pipeline(transaction=False) as pipe:
                for session_id in todo:
                    key, start = redis_keys.pending(session_id), offsets[session_id]
                    if soonest:
                        low = cursor.score if cursor else "-inf"
                        pipe.zrangebyscore(key, low, "+inf", start, want, withscores=True)
                    else:
                        high = cursor.score if cursor else "+inf"
                        pipe.zrevrangebyscore(key, high, "-inf", start, want, withscores=True)
                answers = pipe.execute(raise_on_error=False)
            answers = [[] if isinstance(a, Exception) else a for a in answers]
            again = []
            for session_id, chunk in zip(todo, answers, strict=True):
                for member, score in chunk:
                    entry = Cursor(float(score), member.decode(errors="replace"))
                    try:
                        if redis_keys.session_of(entry.escalation_id) != session_id:
                            raise ValueError("listed under another session")
                    except ValueError:
                        self.redis.zrem(redis_keys.pending(session_id), member)
                        continue
                    if paging_beyond(entry, cursor, query.order):
                        runs[session_id].append(entry)
                if len(chunk) == want and len(runs[session_id]) < want:
                    offsets[session_id] += want  # a run of ties with the cursor: read on
                    again.append(session_id)
            todo = again
        return list(runs.values())

    def page(self, query: PageQuery) -> tuple[Page, list[Escalation | Invalid]]:
        """One page of open escalations of every session (or the filtered ones), forged or
        malformed records listed as Invalid; ones whose record is gone or whose waiter gave up
        are taken off the list. Reads at most limit + 1 entries per session and limit records."""
        sessions = self._sessions_pending(query)
        if not sessions:
            return Page((), False, 0), []
        self._sweep(sessions)
        total = sum(self._zcards(sessions))
        merged = merge(self._runs(sessions, query), query.cursor, query.order, query.limit + 1)
        entries = merged[: query.limit]
        found: list[Escalation | Invalid] = []
        if entries:
            raws = self.redis.mget([redis_keys.record(e.escalation_id) for e in entries])
            now = self._clock()
            for entry, raw in zip(entries, raws, strict=True):
                escalation_id = entry.escalation_id
                if raw is None:
                    self.redis.zrem(
                        redis_keys.pending(redis_keys.session_of(escalation_id)), escalation_id
                    )
                    continue
                escalation = read_record(escalation_id, raw)
                if (
                    isinstance(escalation, Escalation)
                    and now > escalation.deadline + ABANDONED_AFTER_S
                ):
                    # Past its deadline: its waiter has given up; record the expiry it had.
                    self.decide(escalation_id, Verdict.EXPIRED, by=DEADLINE, expiry=True)
                    continue
                found.append(escalation)
        return Page(tuple(entries), len(merged) > query.limit, total), found

    def _sweep(self, sessions: list[str], most: int = 20) -> None:
        """Record the expiry of escalations past their deadline (scored by it) whose waiters
        gave up, a few per session and listing, whichever page is asked for."""
        cutoff = self._clock() - ABANDONED_AFTER_S
        with self.redis.pipeline(transaction=False) as pipe:
            for session_id in sessions:
                pipe.zrangebyscore(redis_keys.pending(session_id), "-inf", cutoff, 0, most)
            answers = pipe.execute(raise_on_error=False)
        found = [[] if isinstance(f, Exception) else f for f in answers]
        for session_id, members in zip(sessions, found, strict=True):
            for member in members:
                escalation_id = member.decode(errors="replace")
                raw = self.get(escalation_id)
                if isinstance(raw, Escalation) and raw.session_id == session_id:
                    self.decide(escalation_id, Verdict.EXPIRED, by=DEADLINE, expiry=True)

    def pending(self, limit: int = 1000) -> list[Escalation | Invalid]:
        """The first `limit` open escalations, latest deadline first (see page())."""
        return self.page(PageQuery(limit=limit))[1]

    def pending_counts(self) -> dict[str, int]:
        """Open escalations per session (one ZCARD each, no record read)."""
        sessions = self._open_sessions()
        counts = self._zcards(sessions)
        return {s: n for s, n in zip(sessions, counts, strict=True) if n}

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
        for _id, found_fields in self.redis.xrevrange(redis_keys.HISTORY, count=scan) or []:
            fields = found_fields or {}
            if session_id and reply_text(fields.get(b"session_id", b"")) != session_id:
                continue
            if verdict and reply_text(fields.get(b"verdict", b"")) != verdict:
                continue
            try:
                entry = HistoryEntry(
                    Escalation.from_json(fields[b"escalation"]),
                    Decision.from_json(fields[b"decision"]),
                )
            except (KeyError, ValueError):
                logger.warning("skipping a malformed history entry %r", _id)
                continue
            if needle and needle not in _haystack(entry):
                continue
            found.append(entry)
            if len(found) >= limit:
                break
        return found

    def sessions(self, limit: int = 200) -> list[SessionInfo]:
        """Registered sessions and any with pending escalations or a Redis user (the index of
        open sessions: only a session with a user can hold remembered scopes, and teardown
        deletes them with the user; no SCAN of the key space)."""
        ids = [reply_text(i) for i in self.redis.zrevrange(redis_keys.SESSIONS, 0, limit - 1)]
        pending_by_session = self.pending_counts()
        for member in self.redis.zrange(redis_keys.OPEN, 0, -1):
            found_id = reply_text(member, errors="replace")
            if redis_keys.SESSION_ID.fullmatch(found_id) and found_id not in ids:
                ids.append(found_id)
        ids += [i for i in pending_by_session if i not in ids]
        found = []
        for session_id in ids[:limit]:
            try:
                raw = self.redis.hgetall(redis_keys.session(session_id))
            except redis.ResponseError:  # a registration of another type: shown as none
                raw = {}
            info = {
                reply_text(k, errors="replace"): reply_text(v, errors="replace")
                for k, v in raw.items()
            }
            try:
                last_seen = float(info.get("last_seen", "0"))
            except ValueError:
                last_seen = 0.0
            found.append(
                SessionInfo(
                    session_id=session_id,
                    worktree=info.get("worktree", ""),
                    agent=info.get("agent", ""),
                    task=info.get("task", ""),
                    last_seen=last_seen,
                    escalations=int(info["escalations"])
                    if info.get("escalations", "").isdigit()
                    else 0,
                    pending=pending_by_session.get(session_id, 0),
                    remembered=tuple(self.remembered(session_id)),
                )
            )
        return found

    # -- approve and remember --------------------------------------------------------------

    def remembered(self, session_id: str) -> list[Scope]:
        """The session's remembered scopes; one stored under a name that is not its id (so the
        UI could not revoke it) or malformed is ignored."""
        scopes = []
        for name, raw in self.redis.hgetall(redis_keys.remembered(session_id)).items():
            try:
                scope = Scope.from_json(raw)
            except ValueError:
                logger.warning("ignoring a malformed remembered scope in session %s", session_id)
                continue
            if scope.id != reply_text(name, errors="replace"):
                logger.warning("ignoring a remembered scope stored under another name")
                continue
            scopes.append(scope)
        return scopes

    def revoke(self, session_id: str, scope_id: str) -> bool:
        try:
            key = redis_keys.remembered(session_id)
        except ValueError:
            return False
        return bool(self.redis.hdel(key, scope_id))

    def remembered_approval(self, escalation: Escalation, scope: Scope) -> Decision:
        """An escalation approved by a remembered scope (the session's side): its record in the
        session's keys and its id on the inbox with the scope; the worker checks the scope is
        one a human chose and puts it in the history (a session writes no history)."""
        decision = Decision(
            escalation.id, Verdict.APPROVED, f"remembered:{scope.id}", self._clock(),
            f"approved earlier for {scope.describe()}", scope, escalation.digest(),
        )  # fmt: skip
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(redis_keys.record(escalation.id), escalation.to_json(), ex=self._retention_s)
            pipe.rpush(redis_keys.INBOX, f"{escalation.id} {scope.id}")
            pipe.execute()
        return decision

    def first_handling(self, escalation_id: str) -> bool:
        """True the first time (within the retention) the worker handles this escalation's
        inbox line; a line pushed again is a duplicate (a session may push what it likes)."""
        return bool(
            self.redis.set(redis_keys.handled(escalation_id), "1", nx=True, ex=self._retention_s)
        )

    def record_remembered(self, escalation: Escalation, decision: Decision) -> None:
        """The history entry of a remembered approval (the worker's side)."""
        self.redis.xadd(
            redis_keys.HISTORY,
            {
                "id": escalation.id,
                "session_id": escalation.session_id,
                "verdict": decision.verdict.value,
                "escalation": escalation.history_json(),
                "decision": decision.to_json(),
            },
            maxlen=self._history_maxlen,
            approximate=False,
        )

    # -- notices for the session's terminal ------------------------------------------------

    def announce(self, session_id: str, line: str) -> int:
        return int(self.redis.publish(redis_keys.notices(session_id), line))

    def follow(self, session_id: str, *, timeout_s: float = 1.0) -> Iterator[str | None]:
        """A session's terminal lines as they come (None each timeout_s, so callers can stop)."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(redis_keys.notices(session_id))
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
