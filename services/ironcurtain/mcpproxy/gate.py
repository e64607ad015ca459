"""Every tool call through one gate: decide, audit (durably) first, then act on the decision.

allow -> forward to the backend; deny -> an MCP tool error result naming the rule and reason,
except a tool nobody offers, which is the JSON-RPC error the MCP spec names (-32602, "Unknown
tool"); escalate -> the Escalator decides (only APPROVED forwards). Audit lines: `decision` before
anything happens, `escalation` when the channel answers, `outcome` after a forwarded call.
If the audit log cannot be written the call is refused: nothing happens unaudited.
The tool list is plain JSON (listing.py); the SDK's result models load with the first call.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import secrets
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from ..audit import AuditError, AuditLog, bounded
from ..audit.redact import redact
from ..escalation.remember import arguments_digest
from ..escalation.types import EscalationOutcome, EscalationRequest, Escalator, Verdict
from ..policy import Call, Decision, Effect, Engine
from ..policy.engine import BAD_ARGUMENTS, UNKNOWN_TOOL
from ..policy.resources import PROMPT_GET, RESERVED, RESOURCE_READ
from . import notices
from .backend import Backend, BackendDown
from .catalog import Catalog, prompt_problem
from .egress import Egress
from .errors import BackendError, ResultTooLarge
from .jsonrpc import INTERNAL_ERROR, INVALID_PARAMS, RpcError
from .stdio import MAX_LINE_BYTES
from .streams import Listener

if TYPE_CHECKING:
    import mcp_types as types

logger = logging.getLogger(__name__)

SEPARATOR = "__"
MALFORMED_REQUEST = "malformed-request"  # refused at the edge, before any tool is named
COMPLETE = "completion/complete"  # audited as SERVER__completion/complete
UNKNOWN_RESOURCE = "unknown-resource"  # no backend lists the URI (or a template it fits)
AMBIGUOUS_RESOURCE = "ambiguous-resource"  # several backends do: which one would read it?
RESOURCE_NOT_FOUND = -32002  # the MCP spec's code for a resource nobody offers
NO_STREAM = "no-client-stream"  # a backend's request that no single client call can take
SERVER_REQUEST_S = 300.0  # a client's answer to sampling or elicitation (a person may answer)
UNSUBSCRIBE_S = 10.0  # telling a backend nobody watches a URI any more: best effort
POLICY_DENIED = -32010  # ours: a resource read or prompt get the policy refused (no isError
# result exists for those), `data` naming the rule and the reason


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
        self.catalog = Catalog(self.backends)  # resources and prompts
        for backend in self.backends.values():  # their requests to the client: decided here
            backend.router.on_request = functools.partial(self._server_request, backend.name)
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
        if backend is None or tool not in backend.tools or tool in RESERVED:
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

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        """One request in flight (a lone one syncs its audit line inline)."""
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1

    def _egress_for(
        self, decision: Decision, server: str
    ) -> contextlib.AbstractContextManager[None]:
        """While an allowed request runs, its URL hosts open to `server`'s own egress leg."""
        if self.egress is None or not decision.domains:
            return contextlib.nullcontext()
        return self.egress.permit(decision.domains, server)

    async def call(
        self, name: str, arguments: Mapping[str, Any] | None, *, listener: Listener | None = None
    ) -> types.CallToolResult:
        """`listener`: the client's stream for this call's progress and log notifications."""
        with self._counted():
            return await self._call(name, arguments, listener)

    async def refuse(self, request: str, reason: str) -> None:
        """A request refused at the edge as malformed: one deny line, no tool, no arguments.
        The refusal stands whether or not the line could be written."""
        try:
            self.audit.admit()
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

    async def _audit_decision(
        self,
        call_id: str,
        tool: str,
        logged_args: Any,
        decision: Decision,
        request: str | None = None,
    ) -> None:
        """The decision line, on disk before anything is done (AuditError: refuse); a log near
        its size limit takes no new call or request."""
        self.audit.admit()
        line = {
            "event": "decision",
            "call": call_id,
            "session": self.session.session_id,
            "tool": tool,
            **({"request": request} if request is not None else {}),
            "arguments": logged_args,
            "effect": decision.effect.value,
            "rule": decision.rule,
            "reason": decision.reason,
            "paths": list(decision.paths),
            "domains": list(decision.domains),
        }
        await self.audit.append_durably(line, inline=self._in_flight == 1)

    async def _call(
        self, name: str, arguments: Mapping[str, Any] | None, listener: Listener | None
    ) -> types.CallToolResult:
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
            await self._audit_decision(call_id, name, logged_args, decision)
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
        return await self._forward(call_id, name, server, tool, args, decision, listener)

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
        listener: Listener | None = None,
    ) -> types.CallToolResult:
        backend = self.backends[server]
        began = time.perf_counter()
        error = None
        result: types.CallToolResult
        try:
            with self._egress_for(decision, server):
                result = await backend.call(tool, args, self.timeouts.call_s, listener)
        except BackendDown as exc:
            error = str(exc)
        except ResultTooLarge as exc:
            error = exc.message
        except BackendError as exc:
            error = f"backend {server!r} answered with an error: {exc.message[:500]}"
        except TimeoutError:
            error = f"backend {server!r} did not answer within {self.timeouts.call_s:g} s"
        except anyio.get_cancelled_exc_class():  # the client cancelled it (or went away)
            self._cancelled(call_id, began)
            raise
        except Exception:  # the decision line is on disk: the outcome line must follow it
            logger.exception("forwarding %s failed", name)
            error = f"forwarding to backend {server!r} failed (an internal error)"
        duration_ms = round((time.perf_counter() - began) * 1000, 3)
        if error is not None:
            result = error_result(f"IronCurtain: {name} failed: {error}")
        try:
            size = len(result.model_dump_json(by_alias=True, exclude_none=True))
        except Exception:  # e.g. a lone surrogate: no UTF-8 form, so nothing we could send
            error = f"backend {server!r} answered a result that cannot be encoded as JSON text"
            result = error_result(f"IronCurtain: {name} failed: {error}")
            size = 0
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

    # -- resources and prompts: each read and get a decision, audited before it is forwarded --

    async def list_resources(self) -> dict[str, Any]:
        return {"resources": await self.catalog.listed("resources/list")}

    async def list_resource_templates(self) -> dict[str, Any]:
        return {"resourceTemplates": await self.catalog.listed("resources/templates/list")}

    async def list_prompts(self) -> dict[str, Any]:
        return {"prompts": await self.catalog.listed("prompts/list")}

    async def _read_decision(self, uri: str) -> tuple[str | None, Decision]:
        """The one server that lists `uri` (or a template it fits), and the read's decision."""
        owners = await self.catalog.owners(uri)
        server = owners[0] if len(owners) == 1 else None
        if not owners:
            return None, Decision(
                Effect.DENY, UNKNOWN_RESOURCE, "no backend lists this resource URI"
            )
        if server is None:
            return None, Decision(
                Effect.DENY,
                AMBIGUOUS_RESOURCE,
                f"several backends list this URI ({', '.join(owners)}); none is asked",
            )
        return server, self._decided(lambda: self.engine.decide_read(server, uri))

    async def read_resource(self, uri: str) -> dict[str, Any]:
        with self._counted():
            server, decision = await self._read_decision(uri)
            return await self._govern(
                server, RESOURCE_READ, {"uri": uri}, decision, "resources/read", {"uri": uri}
            )

    async def subscribe(self, uri: str, listener: Listener) -> dict[str, Any]:
        """A subscription to `uri`'s updates is a read of it (the same decision, audited with
        request `resources/subscribe`); once the backend has it, its updates for that URI go
        to `listener` (the session's stream), and nobody else's."""
        with self._counted():
            server, decision = await self._read_decision(uri)
            result = await self._govern(
                server, RESOURCE_READ, {"uri": uri}, decision, "resources/subscribe", {"uri": uri}
            )
            assert server is not None  # _govern raised for a request routed to no server
            self.backends[server].router.watch(uri, listener)
            return result

    async def unsubscribe(self, uri: str, listener: Listener) -> dict[str, Any]:
        """Narrows what reaches the client, so no decision: the session stops getting `uri`'s
        updates (audited), and a backend nobody else watches it on is told."""
        for backend in self.backends.values():
            if not backend.router.unwatch(uri, listener):
                continue
            try:
                self.audit.append(
                    {
                        "event": "unsubscribe",
                        "call": uuid.uuid4().hex[:16],
                        "session": self.session.session_id,
                        "tool": f"{backend.name}{SEPARATOR}{RESOURCE_READ}",
                        "arguments": redact(bounded({"uri": uri})),
                    },
                    durable=False,
                )
            except AuditError as exc:
                logger.error("an unsubscribe not audited: %s", exc)
            if not backend.router.watched(uri):
                with contextlib.suppress(BackendDown, BackendError, TimeoutError):
                    await backend.request("resources/unsubscribe", {"uri": uri}, UNSUBSCRIBE_S)
        return {}

    async def _server_request(
        self, server: str, method: str, params: Any, listener: Listener | None
    ) -> dict[str, Any]:
        """A backend's sampling or elicitation request: decided (a rule naming the pseudo-tool
        for this server; default deny), audited, then forwarded to the one client call it can
        belong to; its answer rebuilt for the backend. The reply's `result` or `error`."""
        with self._counted():
            call_id = uuid.uuid4().hex[:16]
            label = f"{server}{SEPARATOR}{method}"
            built = notices.server_request(method, params)
            if built is None:
                decision = Decision(Effect.DENY, BAD_ARGUMENTS, f"a {method} of a shape refused")
            elif listener is None or listener.ask is None or method not in listener.capabilities:
                decision = Decision(
                    Effect.DENY,
                    NO_STREAM,
                    "no single call in flight on this backend whose client can answer it",
                )
            else:
                decision = self._decided(lambda: self.engine.decide(Call(server, method, {})))
            logged = redact(bounded(built or {}))
            try:
                await self._audit_decision(call_id, label, logged, decision, request=method)
            except AuditError as exc:
                return _error(INTERNAL_ERROR, _unaudited_text(label, exc))
            denied = (
                f"IronCurtain policy denied {label} (rule {decision.rule!r}): {decision.reason}"
            )
            if decision.effect is Effect.ESCALATE:
                outcome = await self._escalate(call_id, server, method, {}, logged, decision)
                if isinstance(outcome, AuditError):
                    return _error(INTERNAL_ERROR, _unaudited_text(label, outcome))
                if not outcome.allowed:
                    return _error(
                        POLICY_DENIED, f"{denied}; not approved ({outcome.verdict.value})"
                    )
            elif decision.effect is Effect.DENY:
                return _error(POLICY_DENIED, denied)
            assert listener is not None
            assert listener.ask is not None
            assert built is not None
            began = time.perf_counter()
            error: str | None = None
            answer: dict[str, Any] | None = None
            try:
                with anyio.fail_after(SERVER_REQUEST_S):
                    answer = notices.client_result(method, await listener.ask(method, built))
                if answer is None:
                    error = "the client's answer was refused (its shape)"
            except TimeoutError:
                error = f"the client did not answer within {SERVER_REQUEST_S:g} s"
            except RpcError as exc:  # the client's own error answer
                error = f"the client answered with an error: {exc.message[:300]}"
            try:
                self.audit.append(
                    {
                        "event": "outcome",
                        "call": call_id,
                        "ok": error is None,
                        "error": error,
                        "tool_error": False,
                        "result_bytes": len(json.dumps(answer)) if answer is not None else 0,
                        "duration_ms": round((time.perf_counter() - began) * 1000, 3),
                    },
                    durable=False,
                )
            except AuditError as exc:
                logger.error("outcome of %s not audited: %s", call_id, exc)
            if error is not None or answer is None:
                return _error(INTERNAL_ERROR, f"IronCurtain: {label} failed: {error}")
            return {"result": answer}

    def forget(self, listener: Listener) -> None:
        """A session ended: its stream is dropped from every backend's subscriptions."""
        for backend in self.backends.values():
            backend.router.forget(listener)

    async def get_prompt(self, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        with self._counted():
            server, sep, prompt = name.partition(SEPARATOR)
            backend = self.backends.get(server) if sep else None
            listed = None if backend is None else await self.catalog.prompt(backend, prompt)
            args = dict(arguments)
            if backend is None or listed is None:
                decision = Decision(Effect.DENY, UNKNOWN_TOOL, f"no backend offers prompt {name}")
            else:
                problem = prompt_problem(listed, args)
                decision = (
                    Decision(Effect.DENY, BAD_ARGUMENTS, f"prompt arguments refused: {problem}")
                    if problem is not None
                    else self._decided(
                        lambda: self.engine.decide(
                            Call(server, PROMPT_GET, {"name": prompt, "arguments": args})
                        )
                    )
                )
            forwarded = {"name": prompt, "arguments": args}
            return await self._govern(
                server if backend is not None else None,
                PROMPT_GET,
                {"name": name, "arguments": args},
                decision,
                "prompts/get",
                forwarded,
            )

    async def complete(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """`completion/complete` for a prompt's or a resource template's argument: decided as a
        get of that prompt (its rule), or a read of the template's URI as written (`file:`
        templates under the workspace rules: a completion lists names there), then forwarded
        with the prompt's own name."""
        with self._counted():
            ref = params.get("ref")
            argument = params.get("argument")
            if not isinstance(ref, dict) or not isinstance(argument, dict):
                raise RpcError(INVALID_PARAMS, "completion/complete needs params.ref and argument")
            forwarded = {k: v for k, v in params.items() if k in ("argument", "context")}
            server: str | None = None
            if ref.get("type") == "ref/prompt" and isinstance(ref.get("name"), str):
                server, sep, prompt = ref["name"].partition(SEPARATOR)
                backend = self.backends.get(server) if sep else None
                listed = None if backend is None else await self.catalog.prompt(backend, prompt)
                if backend is None or listed is None:
                    server = None
                    decision = Decision(
                        Effect.DENY, UNKNOWN_TOOL, f"no backend offers prompt {ref['name'][:200]}"
                    )
                else:
                    call = Call(server, PROMPT_GET, {"name": prompt, "arguments": {}})
                    decision = self._decided(lambda: self.engine.decide(call))
                    forwarded["ref"] = {"type": "ref/prompt", "name": prompt}
            elif ref.get("type") == "ref/resource" and isinstance(ref.get("uri"), str):
                template = ref["uri"]
                owners = [
                    b.name
                    for b in self.backends.values()
                    if any(
                        t.get("uriTemplate") == template
                        for t in await self.catalog.listing(b, "resources/templates/list")
                    )
                ]
                server = owners[0] if len(owners) == 1 else None
                decision = (
                    self._decided(lambda: self.engine.decide_read(owners[0], template))
                    if server is not None
                    else Decision(
                        Effect.DENY,
                        UNKNOWN_RESOURCE if not owners else AMBIGUOUS_RESOURCE,
                        "no single backend lists this resource template",
                    )
                )
                forwarded["ref"] = {"type": "ref/resource", "uri": template}
            else:
                raise RpcError(INVALID_PARAMS, "completion/complete: ref/prompt or ref/resource")
            logged = {"ref": ref, "argument": argument}
            return await self._govern(
                server, COMPLETE, logged, decision, "completion/complete", forwarded
            )

    @staticmethod
    def _decided(decide: Any) -> Decision:
        try:
            decision: Decision = decide()
        except Exception:  # a request's top level: log it, and fail closed
            logger.exception("deciding a resource or prompt request failed; denying")
            return Decision(Effect.DENY, "internal-error", "the policy check failed")
        return decision

    async def _govern(
        self,
        server: str | None,
        what: str,
        args: dict[str, Any],
        decision: Decision,
        method: str,
        params: dict[str, Any],
    ) -> dict[str, Any]:
        """Audit the decision (durably), then refuse, escalate or forward `method` to `server`;
        the outcome audited after a forwarded request. A refusal is a JSON-RPC error."""
        call_id = uuid.uuid4().hex[:16]
        label = f"{server}{SEPARATOR}{what}" if server else what
        logged_args = redact(bounded(args))
        try:
            await self._audit_decision(call_id, label, logged_args, decision, request=method)
        except AuditError as exc:
            logger.error("refusing %s: %s", label, exc)
            raise RpcError(INTERNAL_ERROR, _unaudited_text(label, exc)) from None
        if decision.rule == UNKNOWN_RESOURCE:
            uri = args.get("uri", args.get("ref", {}).get("uri"))
            raise RpcError(RESOURCE_NOT_FOUND, "Resource not found", data={"uri": uri})
        if decision.rule == UNKNOWN_TOOL and method == "prompts/get":
            raise RpcError(INVALID_PARAMS, f"Unknown prompt: {str(args['name'])[:200]}")
        if decision.rule == UNKNOWN_TOOL and method == "completion/complete":
            raise RpcError(INVALID_PARAMS, decision.reason)
        denied = f"IronCurtain policy denied {label} (rule {decision.rule!r}): {decision.reason}"
        if decision.effect is Effect.DENY:
            raise RpcError(
                POLICY_DENIED, denied, data={"rule": decision.rule, "reason": decision.reason}
            )
        assert server is not None  # only a request routed to one server is allowed or escalated
        if decision.effect is Effect.ESCALATE:
            outcome = await self._escalate(call_id, server, what, args, logged_args, decision)
            if isinstance(outcome, AuditError):
                raise RpcError(INTERNAL_ERROR, _unaudited_text(label, outcome))
            if not outcome.allowed:
                raise RpcError(
                    POLICY_DENIED,
                    f"IronCurtain escalated {label} (rule {decision.rule!r}: {decision.reason}); "
                    f"not approved ({outcome.verdict.value}): {outcome.message}",
                    data={"rule": decision.rule, "verdict": outcome.verdict.value},
                )
        backend = self.backends[server]
        began = time.perf_counter()
        error: RpcError | None = None
        result: dict[str, Any] = {}
        try:
            with self._egress_for(decision, server):
                result = await backend.request(method, params, self.timeouts.call_s)
        except BackendDown as exc:
            error = RpcError(INTERNAL_ERROR, f"IronCurtain: {label} failed: {exc}")
        except BackendError as exc:  # the backend's own error (e.g. not found), passed on
            error = RpcError(exc.code, exc.message[:500])
        except TimeoutError:
            why = f"backend {server!r} did not answer within {self.timeouts.call_s:g} s"
            error = RpcError(INTERNAL_ERROR, f"IronCurtain: {label} failed: {why}")
        except anyio.get_cancelled_exc_class():
            self._cancelled(call_id, began)
            raise
        except Exception:  # the decision line is on disk: the outcome line must follow it
            logger.exception("forwarding %s failed", label)
            error = RpcError(INTERNAL_ERROR, f"IronCurtain: {label} failed (an internal error)")
        size = len(json.dumps(result, separators=(",", ":")))
        if error is None and size > self.max_result_bytes:
            error = RpcError(INTERNAL_ERROR, ResultTooLarge(self.max_result_bytes).message)
        try:
            self.audit.append(
                {
                    "event": "outcome",
                    "call": call_id,
                    "ok": error is None,
                    "error": None if error is None else error.message,
                    "tool_error": False,
                    "result_bytes": size,
                    "duration_ms": round((time.perf_counter() - began) * 1000, 3),
                },
                durable=False,  # after the fact; the decision line before it is on disk
            )
        except AuditError as exc:
            logger.error("outcome of %s not audited: %s", call_id, exc)
        if error is not None:
            raise error
        return result

    def _cancelled(self, call_id: str, began: float) -> None:
        """The outcome of a forwarded request the client cancelled (the backend was told)."""
        try:
            self.audit.append(
                {
                    "event": "outcome",
                    "call": call_id,
                    "ok": False,
                    "error": "cancelled",
                    "cancelled": True,
                    "tool_error": False,
                    "result_bytes": 0,
                    "duration_ms": round((time.perf_counter() - began) * 1000, 3),
                },
                durable=False,
            )
        except AuditError as exc:
            logger.error("outcome of %s not audited: %s", call_id, exc)


def _error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _unaudited(name: str, exc: AuditError) -> types.CallToolResult:
    """Nothing happens unaudited: the refusal says why (e.g. no space left on the disk)."""
    return error_result(_unaudited_text(name, exc))


def _unaudited_text(name: str, exc: AuditError) -> str:
    return (
        f"IronCurtain refused {name}: the audit log cannot be written ({exc.reason}); "
        "every call is refused until it can"
    )
