"""RedisEscalator: the MCP proxy's Escalator over the Redis channel.

escalate() never raises for channel failures and never allows by accident: remembered scopes are
consulted first (they only turn escalate into allow), then the escalation is stored, notified and
waited for in a bounded thread pool. Redis down -> UNAVAILABLE at once; no decision by the
deadline -> EXPIRED. The audit hook sees every decision before the outcome is returned; if it
fails, the call is denied (the audit entry comes before the effect).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .record import AUTO_REVIEWER, Decision, Escalation, new_id
from .types import EscalationOutcome, EscalationRequest, Verdict

if TYPE_CHECKING:  # Redis and RQ load with the first escalation: most sessions never escalate
    from .channel import Channel

logger = logging.getLogger(__name__)

# The hook gets one flat JSON-ready mapping per decision (see audit_entry) and may be async.
AuditHook = Callable[[Mapping[str, Any]], Awaitable[None] | None]


def audit_entry(escalation: Escalation, decision: Decision) -> dict[str, Any]:
    return {
        "event": "escalation.decided",
        "escalation_id": escalation.id,
        "session_id": escalation.session_id,
        "server": escalation.server,
        "tool": escalation.tool,
        "rule": escalation.rule,
        "verdict": decision.verdict.value,
        "decided_by": decision.by,
        "decided_at": decision.at,
        "reason": decision.reason,
        "remembered_scope": decision.remember.to_dict() if decision.remember else None,
        "request_digest": escalation.digest(),
        "created_at": escalation.created_at,
        "deadline": escalation.deadline,
    }


def message(escalation: Escalation, decision: Decision, timeout_s: float) -> str:
    """What the agent is told."""
    why = f": {decision.reason}" if decision.reason else ""
    if decision.verdict is Verdict.APPROVED:
        return f"{escalation.call} was approved by {decision.by}{why}"
    if decision.verdict is Verdict.EXPIRED:
        return (
            f"approval for {escalation.call} timed out: nobody decided within {timeout_s:g}s, "
            "so it was not run. This is not a refusal; you may ask again or change course."
        )
    return f"{escalation.call} was denied by {decision.by}{why}"


class RedisEscalator:
    """Escalations over the shared Redis. `channel` may be a factory: the Redis client (and the
    Redis and RQ libraries, ~65 ms of a proxy's start) is then made on the first escalation."""

    def __init__(
        self,
        channel: Channel | Callable[[], Channel],
        *,
        audit: AuditHook | None = None,
        max_waiting: int = 32,
    ) -> None:
        self._made: Channel | None = None if callable(channel) else channel
        self._make = channel if callable(channel) else None
        self._making = threading.Lock()
        self._audit = audit
        self._slots = threading.BoundedSemaphore(max_waiting)
        self._pool = ThreadPoolExecutor(max(1, max_waiting), thread_name_prefix="escalation")

    @classmethod
    def connect(
        cls,
        url: str,
        credential_file: Path | str,
        *,
        ca_file: Path | str,
        audit: AuditHook | None = None,
        max_waiting: int = 32,
    ) -> RedisEscalator:
        """The usual construction: a fail-fast client for `url` as the session's Redis user
        (the credential file `ironcurtain run` hands the proxy: `USER PASSWORD`).

        The URL (`rediss://` only), the credential and the team CA file (`ca_file`) are checked
        now, so any mistake stops the proxy at start; the client is made on the first
        escalation."""
        from . import tls
        from .acl import Credential

        tls.Endpoint.parse(url)
        credential = Credential.parse(Path(credential_file).read_text())
        tls.context(ca_file)

        def make() -> Channel:
            from .channel import Channel, connect

            return Channel(connect(url, credential=credential, ca_file=ca_file))

        return cls(make, audit=audit, max_waiting=max_waiting)

    @property
    def _channel(self) -> Channel:
        with self._making:
            if self._made is None:
                assert self._make is not None
                self._made = self._make()
            return self._made

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._made is not None:
            self._made.redis.close()

    async def escalate(self, request: EscalationRequest, timeout_s: float) -> EscalationOutcome:
        call = f"{request.server}__{request.tool}"
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            return _unavailable(call, f"invalid escalation timeout {timeout_s!r}")
        if not self._slots.acquire(blocking=False):
            return _unavailable(call, "too many escalations are already waiting")
        try:
            thread = self._pool.submit(self._ask, request, timeout_s)
        except RuntimeError:  # closed
            self._slots.release()
            return _unavailable(call, "the escalation channel is shut down")
        # The slot is free again when the thread is done (not when a cancelled caller leaves),
        # so abandoned waits can never pile up beyond max_waiting threads.
        thread.add_done_callback(lambda _: self._slots.release())
        import redis

        from .channel import WAIT_GRACE_S

        try:
            # A backstop: the blocking read is bounded too, this makes sure we never hang.
            escalation, decision, reviewer_on = await asyncio.wait_for(
                asyncio.wrap_future(thread), timeout_s + 2 * WAIT_GRACE_S + 5.0
            )
        except (redis.RedisError, OSError, TimeoutError) as exc:
            # The details (addresses) go to the proxy's log, not to the agent.
            logger.warning("escalation of %s denied: Redis unreachable: %s", call, exc)
            return _unavailable(call, "the escalation channel (Redis) is unreachable")
        except ValueError as exc:
            logger.exception("malformed escalation data for %s", call)
            return _unavailable(call, f"the escalation channel returned malformed data ({exc})")
        except Exception:  # the edge: fail closed, say so, keep the details in the log
            logger.exception("escalation of %s failed", call)
            return _unavailable(call, "the escalation channel failed (see the proxy log)")
        mismatch = _mismatch(escalation, decision, reviewer_on)
        if mismatch:
            logger.error("escalation %s: refusing the decision: %s", escalation.id, mismatch)
            decision = Decision(
                escalation.id, Verdict.DENIED, decision.by, decision.at,
                f"refused by the proxy: {mismatch}", None, decision.request_digest,
            )  # fmt: skip
        try:
            if self._audit is not None:
                entry = audit_entry(escalation, decision)
                if mismatch:
                    entry = {**entry, "event": "escalation.mismatch", "refused": mismatch}
                result = self._audit(entry)
                if inspect.isawaitable(result):
                    await result
        except Exception:
            logger.exception("could not audit the decision on escalation %s", escalation.id)
            return _unavailable(call, "the decision could not be written to the audit log")
        return EscalationOutcome(
            verdict=decision.verdict,
            message=message(escalation, decision, timeout_s),
            escalation_id=escalation.id,
            decided_by=decision.by,
        )

    def _ask(
        self, request: EscalationRequest, timeout_s: float
    ) -> tuple[Escalation, Decision, bool]:
        """The escalation, its decision, and whether the session's auto-reviewer is on (read
        only when it decided: its approval counts only while a human has it switched on)."""
        for scope in self._channel.remembered(request.session_id):
            if scope.covers(
                request.server,
                request.tool,
                request.arguments_digest,
                request.paths,
                request.domains,
            ):
                escalation = Escalation.from_request(
                    request, id=new_id(request.session_id), now=time.time(), timeout_s=0.0
                )
                return escalation, self._channel.remembered_approval(escalation, scope), False
        escalation = self._channel.create(request, timeout_s)
        decision = self._channel.wait(escalation)
        by_reviewer = decision.by == AUTO_REVIEWER
        return escalation, decision, by_reviewer and self._channel.auto_review(request.session_id)


def _mismatch(escalation: Escalation, decision: Decision, reviewer_on: bool = False) -> str:
    """Why an approval is not for the call this proxy holds ('' when it is)."""
    if decision.verdict is not Verdict.APPROVED:
        return ""
    if decision.by == AUTO_REVIEWER and not reviewer_on:
        return "the auto-reviewer approved, but it is not switched on for this session"
    if decision.escalation_id != escalation.id:
        return "the decision names another escalation"
    if decision.request_digest != escalation.digest():
        return "the approved request is not the request this proxy is holding"
    return ""


def _unavailable(call: str, why: str) -> EscalationOutcome:
    return EscalationOutcome(
        verdict=Verdict.UNAVAILABLE, message=f"escalation of {call} denied: {why}"
    )
