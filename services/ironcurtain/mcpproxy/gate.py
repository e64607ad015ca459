"""Every tool call through one gate: decide, audit (durably) first, then act on the decision.

allow -> forward to the backend; deny -> an MCP tool error result naming the rule and reason,
except a tool nobody offers, which is the JSON-RPC error the MCP spec names (-32602, "Unknown
tool"); escalate -> the Escalator decides (only APPROVED forwards). Audit lines: `decision` before
anything happens, `escalation` when the channel answers, `outcome` after a forwarded call.
If the audit log cannot be written the call is refused: nothing happens unaudited.
The tool list is plain JSON (listing.py); the SDK's result models load with the first call.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from ..audit import AuditError, AuditLog, bounded
from ..audit.redact import redact
from ..escalation.remember import arguments_digest
from ..escalation.types import EscalationOutcome, EscalationRequest, Escalator, Verdict
from ..policy import Call, Decision, Effect, Engine
from ..policy.engine import BAD_ARGUMENTS, UNKNOWN_TOOL
from .backend import Backend, BackendDown
from .egress import Egress
from .errors import BackendError, ResultTooLarge
from .jsonrpc import INVALID_PARAMS, RpcError
from .stdio import MAX_LINE_BYTES

if TYPE_CHECKING:
    import mcp_types as types

logger = logging.getLogger(__name__)

SEPARATOR = "__"
MALFORMED_REQUEST = "malformed-request"  # refused at the edge, before any tool is named


@dataclass(frozen=True, slots=True)
class SessionInfo:
    session_id: str = "local"
    worktree: str = ""
    agent: str = ""
    task: str = ""


@dataclass(frozen=True, slots=True)
class Timeouts:
    call_s: float = 120.0
    escalation_s: float = 300.0


def error_result(text: str) -> types.CallToolResult:
    import mcp_types as types  # loaded by the first call (see the module doc)

    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


class Gate:
    def __init__(
        self,
        engine: Engine,
        backends: Mapping[str, Backend],
        audit: AuditLog,
        escalator: Escalator,
        *,
        session: SessionInfo | None = None,
        egress: Egress | None = None,
        timeouts: Timeouts | None = None,
        max_result_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.engine = engine
        self.max_result_bytes = max_result_bytes  # larger results are refused, naming the limit
        self.backends = dict(backends)
        self.audit = audit
        self.escalator = escalator
        self.session = session or SessionInfo()
        self.egress = egress
        self.timeouts = timeouts or Timeouts()
        self._tools: list[dict[str, Any]] = []
        self._schemas: dict[str, Mapping[str, Any]] = {}
        self._tools_generation: tuple[int, ...] = ()
        self._in_flight = 0  # calls inside call(): with one, nothing else needs the loop
        # Keys the digest of raw arguments an escalation carries (remember.arguments_digest):
        # in this process's memory only, so nobody reading Redis can test guesses against it.
        self._digest_key = secrets.token_bytes(32)

    def tools(self) -> list[dict[str, Any]]:
        """The union of the backends' tools (plain JSON, the stored form of listing.py),
        renamed SERVER__TOOL, schemas passed through."""
        generation = tuple(b.starts for b in self.backends.values())
        if generation != self._tools_generation:  # rebuilt only when a backend (re)started
            self._tools = [
                {**tool, "name": f"{backend.name}{SEPARATOR}{tool['name']}"}
                for backend in self.backends.values()
                for tool in backend.tools.values()
            ]
            self._schemas = {t["name"]: t["inputSchema"] for t in self._tools}
            self._tools_generation = generation
        return self._tools

    def input_schema(self, name: str) -> Mapping[str, Any] | None:
        self.tools()
        return self._schemas.get(name)

    def _decide(self, server: str, tool: str, arguments: Mapping[str, Any]) -> Decision:
        backend = self.backends.get(server)
        if backend is None or tool not in backend.tools:
            return Decision(
                Effect.DENY, UNKNOWN_TOOL, f"no backend offers {server}{SEPARATOR}{tool}"
            )
        problem = backend.schema_problem(tool, arguments)
        if problem is not None:
            return Decision(
                Effect.DENY,
                BAD_ARGUMENTS,
                f"the arguments do not fit the tool's input schema: {problem}",
            )
        return self.engine.decide(Call(server, tool, arguments))

    async def call(self, name: str, arguments: Mapping[str, Any] | None) -> types.CallToolResult:
        self._in_flight += 1
        try:
            return await self._call(name, arguments)
        finally:
            self._in_flight -= 1

    async def refuse(self, request: str, reason: str) -> None:
        """A request refused at the edge as malformed: one deny line, no tool, no arguments.
        The refusal stands whether or not the line could be written."""
        try:
            await self.audit.append_durably(
                {
                    "event": "decision",
                    "call": uuid.uuid4().hex[:16],
                    "session": self.session.session_id,
                    "tool": None,
                    "request": request[:32],
                    "arguments": {},
                    "effect": Effect.DENY.value,
                    "rule": MALFORMED_REQUEST,
                    "reason": reason[:300],
                    "paths": [],
                    "domains": [],
                },
                inline=self._in_flight == 0,
            )
        except AuditError as exc:
            logger.error("refused a malformed request, not audited: %s", exc)

    async def _call(self, name: str, arguments: Mapping[str, Any] | None) -> types.CallToolResult:
        call_id = uuid.uuid4().hex[:16]
        server, sep, tool = name.partition(SEPARATOR)
        args = dict(arguments or {})
        if not sep:
            decision = Decision(Effect.DENY, UNKNOWN_TOOL, f"{name!r} is not a SERVER__TOOL name")
        else:
            try:
                decision = self._decide(server, tool, args)
            except Exception:  # a request's top level: log it, and fail closed
                logger.exception("deciding %s failed; denying", name)
                decision = Decision(Effect.DENY, "internal-error", "the policy check failed")
        # Bounded (names too) and redacted once: the same excerpt goes to the audit line and to
        # an escalation's record in the team store.
        logged_args = redact(bounded(args))
        try:
            await self.audit.append_durably(
                {
                    "event": "decision",
                    "call": call_id,
                    "session": self.session.session_id,
                    "tool": name,
                    "arguments": logged_args,
                    "effect": decision.effect.value,
                    "rule": decision.rule,
                    "reason": decision.reason,
                    "paths": list(decision.paths),
                    "domains": list(decision.domains),
                },
                inline=self._in_flight == 1,
            )
        except AuditError as exc:
            logger.error("refusing %s: %s", name, exc)
            return _unaudited(name, exc)

        if decision.rule == UNKNOWN_TOOL and self.input_schema(name) is None:
            # Not in tools/list: a protocol error, as the spec says (its example: -32602).
            raise RpcError(INVALID_PARAMS, f"Unknown tool: {name[:200]}")
        if decision.effect is Effect.DENY:
            return error_result(
                f"IronCurtain policy denied {name} (rule {decision.rule!r}): {decision.reason}"
            )
        if decision.effect is Effect.ESCALATE:
            outcome = await self._escalate(call_id, server, tool, args, logged_args, decision)
            if isinstance(outcome, AuditError):
                return _unaudited(name, outcome)
            if not outcome.allowed:
                return error_result(
                    f"IronCurtain escalated {name} (rule {decision.rule!r}: {decision.reason}); "
                    f"not approved ({outcome.verdict.value}): {outcome.message}"
                )
        return await self._forward(call_id, name, server, tool, args, decision)

    async def _escalate(
        self,
        call_id: str,
        server: str,
        tool: str,
        args: Mapping[str, Any],
        logged_args: dict[str, Any],
        decision: Decision,
    ) -> EscalationOutcome | AuditError:
        try:
            recent = self.audit.tail(20)  # bounded: read from the end, each line cut
        except OSError:
            recent = ()
        request = EscalationRequest(
            session_id=self.session.session_id,
            worktree=self.session.worktree,
            agent=self.session.agent,
            server=server,
            tool=tool,
            arguments=logged_args,
            rule=decision.rule,
            reason=decision.reason,
            task=self.session.task,
            paths=decision.paths,
            domains=decision.domains,
            recent_audit=recent,
            arguments_digest=arguments_digest(args, self._digest_key),
        )
        limit = self.timeouts.escalation_s
        try:
            with anyio.fail_after(limit + 5):
                outcome = await self.escalator.escalate(request, limit)
        except TimeoutError:
            outcome = EscalationOutcome(Verdict.EXPIRED, f"no decision within {limit:g} s")
        except Exception:  # the channel promised not to raise; fail closed if it does
            logger.exception("escalator failed; denying")
            outcome = EscalationOutcome(Verdict.UNAVAILABLE, "the escalation channel failed")
        try:
            await self.audit.append_durably(
                {
                    "event": "escalation",
                    "call": call_id,
                    "verdict": outcome.verdict.value,
                    "message": outcome.message,
                    "escalation_id": outcome.escalation_id,
                    "decided_by": outcome.decided_by,
                },
                inline=self._in_flight == 1,
            )
        except AuditError as exc:
            return exc
        return outcome

    async def _forward(
        self,
        call_id: str,
        name: str,
        server: str,
        tool: str,
        args: dict[str, Any],
        decision: Decision,
    ) -> types.CallToolResult:
        backend = self.backends[server]
        began = time.perf_counter()
        error = None
        result: types.CallToolResult
        try:
            if self.egress is not None and decision.domains:
                with self.egress.permit(decision.domains):
                    result = await backend.call(tool, args, self.timeouts.call_s)
            else:
                result = await backend.call(tool, args, self.timeouts.call_s)
        except BackendDown as exc:
            error = str(exc)
        except ResultTooLarge as exc:
            error = exc.message
        except BackendError as exc:
            error = f"backend {server!r} answered with an error: {exc.message[:500]}"
        except TimeoutError:
            error = f"backend {server!r} did not answer within {self.timeouts.call_s:g} s"
        except Exception:  # the decision line is on disk: the outcome line must follow it
            logger.exception("forwarding %s failed", name)
            error = f"forwarding to backend {server!r} failed (an internal error)"
        duration_ms = round((time.perf_counter() - began) * 1000, 3)
        if error is not None:
            result = error_result(f"IronCurtain: {name} failed: {error}")
        size = len(result.model_dump_json(by_alias=True, exclude_none=True))
        if error is None and size > self.max_result_bytes:  # e.g. a url backend (read whole)
            error = ResultTooLarge(self.max_result_bytes).message
            result = error_result(f"IronCurtain: {name} failed: {error}")
        try:
            self.audit.append(
                {
                    "event": "outcome",
                    "call": call_id,
                    "ok": error is None and not result.is_error,
                    "error": error,
                    "tool_error": bool(result.is_error) and error is None,
                    "result_bytes": size,
                    "duration_ms": duration_ms,
                },
                durable=False,  # after the fact; the decision line before it is on disk
            )
        except AuditError as exc:
            # The call already happened; the decision line is on disk. Say so loudly.
            logger.error("outcome of %s not audited: %s", call_id, exc)
        return result


def _unaudited(name: str, exc: AuditError) -> types.CallToolResult:
    """Nothing happens unaudited: the refusal says why (e.g. no space left on the disk)."""
    return error_result(
        f"IronCurtain refused {name}: the audit log cannot be written ({exc.reason}); "
        "every call is refused until it can"
    )
