"""Streamable HTTP for the proxy: one lean ASGI app, JSON responses, SSE where a stream is due.

Spoken to the agent's MCP client (Claude Code, the Python SDK, ...). What it serves:
- POST /mcp, one JSON-RPC message: initialize (opens a session, `Mcp-Session-Id` issued and then
  required), notifications/initialized and other notifications (202), ping, tools/list,
  tools/call; the 2026-07-28 per-request envelope (server/discover, tools/list, tools/call, with
  the routing-header checks) when `MCP-Protocol-Version` names it; anything else a JSON-RPC error.
  A handshake-era tools/call whose client accepts `text/event-stream` and gave a progress token
  or set a log level is answered as SSE: the backend's progress and log notifications for that
  call (streams.py routes them, notices.py rebuilds them), then the response; otherwise JSON.
  A client that declared `sampling` / `elicitation` gets its calls as SSE too: a backend's
  request, once the gate allowed it, goes on that stream with an id of ours, and the client's
  answer is taken from a POST of the same session naming that id (`_ask`, `_answered`).
- resources/subscribe (decided as a read of the URI, gate.py) and unsubscribe, per session.
- GET: a session that subscribed to a resource gets its standalone SSE stream (its URIs'
  `notifications/resources/updated`, nothing else; one stream at a time); otherwise 405.
- DELETE: ends a session (and its subscriptions).
Every tools/call goes to `Gate.call`, which decides, audits and forwards exactly as before.
A request refused here because it is malformed (strict JSON, duplicate or ambiguous headers, a
media type that is not exactly JSON, a body over the limit, a foreign Host / Origin) never
reaches the gate's decision, but leaves one in the audit: `Gate.refuse` writes a deny line.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

import anyio

if TYPE_CHECKING:
    import mcp_types as types
    from mcp.shared.inbound import InboundLadderRejection

from . import notices, protocol
from .jsonrpc import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    Notification,
    Request,
    Response,
    RpcError,
    parse_message,
    result_body,
)
from .protocol import ServerInfo
from .streams import MAX_CALL_EVENTS, Listener
from .wire import HANDSHAKE_PROTOCOL_VERSIONS, HEADER_MISMATCH, MODERN_PROTOCOL_VERSIONS

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

REQUEST_CANCELLED = -32800  # as the SDK's server answers a request the client cancelled
MAX_BODY_BYTES = 4 * 1024 * 1024  # as the SDK's server: a tool call's arguments, not uploads
MAX_SESSIONS = 1024  # beyond this the least recently used session is forgotten (its client
# gets 404 and, as the spec says, initializes again): a bound, never a lock-out
_ALL_VERSIONS = (*HANDSHAKE_PROTOCOL_VERSIONS, *MODERN_PROTOCOL_VERSIONS)
_JSON = (b"content-type", b"application/json")
_SSE = (b"content-type", b"text/event-stream")
_NO_CACHE = (b"cache-control", b"no-cache")
# Headers that mean one thing: sent twice, readers disagree on which counts (the last won here,
# the first elsewhere), so a request that carries one twice is refused.
SINGLE_HEADERS = frozenset(
    {"host", "origin", "content-type", "mcp-session-id", "mcp-protocol-version"}
)


class Tools(Protocol):
    """What the HTTP layer needs from the gate."""

    def tools(self) -> list[dict[str, Any]]: ...  # the stored form (listing.py)

    def input_schema(self, name: str) -> Mapping[str, Any] | None: ...

    async def call(
        self, name: str, arguments: Mapping[str, Any] | None, *, listener: Listener | None = None
    ) -> types.CallToolResult: ...

    async def refuse(self, request: str, reason: str) -> None: ...  # audited, never raises

    # Resources and prompts (gate.py): plain JSON results; a refusal raises RpcError.
    async def list_resources(self) -> dict[str, Any]: ...

    async def list_resource_templates(self) -> dict[str, Any]: ...

    async def list_prompts(self) -> dict[str, Any]: ...

    async def read_resource(self, uri: str) -> dict[str, Any]: ...

    async def get_prompt(self, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]: ...

    async def complete(self, params: Mapping[str, Any]) -> dict[str, Any]: ...

    # Subscriptions (gate.py): `listener` is the session's standalone stream.
    async def subscribe(self, uri: str, listener: Listener) -> dict[str, Any]: ...

    async def unsubscribe(self, uri: str, listener: Listener) -> dict[str, Any]: ...

    def forget(self, listener: Listener) -> None: ...


class Responder(Protocol):
    """What the HTTP/1.1 server (server.py) serves: McpHttp, or several by path."""

    async def respond(
        self, method: str, path: str, raw: list[tuple[str, str]], body: bytes | None
    ) -> Reply: ...


Write = Callable[[bytes], Awaitable[None]]
Producer = Callable[[Write], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole response, or with `stream` a streamed body (SSE): `stream(write)` writes its
    events and returns when the response is complete. `follow`: the stream only follows events
    (a GET stream), so a client that goes away ends it; a POST's stream answers a call, which
    goes on if its client goes away (as a JSON answer's call does)."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    stream: Producer | None = None
    follow: bool = False

    async def send(self, send: Send) -> None:
        if self.stream is not None:
            start = {"type": "http.response.start", "status": self.status}
            await send({**start, "headers": list(self.headers)})

            async def write(chunk: bytes) -> None:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

            await self.stream(write)
            await send({"type": "http.response.body", "body": b""})
            return
        headers = [*self.headers, (b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def _json(status: int, body: bytes, session: str | None = None) -> Reply:
    if session is None:
        return Reply(status, body, (_JSON,))
    return Reply(status, body, (_JSON, (b"mcp-session-id", session.encode())))


def _text(status: int, text: str, *extra: tuple[bytes, bytes]) -> Reply:
    return Reply(status, text.encode(), ((b"content-type", b"text/plain; charset=utf-8"), *extra))


def _inbound() -> ModuleType:
    """The SDK's request checks, loaded on first use: importing the SDK is a third of the
    proxy's start-up, and a client of the handshake-era protocol never needs them."""
    import mcp.shared.inbound

    return mcp.shared.inbound


def _rejection(rejection: InboundLadderRejection, request_id: Any) -> Reply:
    error = RpcError(rejection.code, rejection.message, id=request_id, data=rejection.data)
    return _json(_inbound().ERROR_CODE_HTTP_STATUS.get(rejection.code, 400), error.body())


def accepts_json(accept: str) -> bool:
    """Whether an Accept header admits application/json (RFC 9110 wildcards included)."""
    for item in accept.split(","):
        media = item.split(";", 1)[0].strip().lower()
        if media in ("application/json", "application/*", "*/*"):
            return True
    return False


def accepts_sse(accept: str) -> bool:
    """Whether an Accept header admits text/event-stream (by name: a wildcard alone is taken
    as a client that never asked for a stream)."""
    return any(
        item.split(";", 1)[0].strip().lower() == "text/event-stream" for item in accept.split(",")
    )


def _event(body: bytes) -> bytes:
    return b"event: message\ndata: " + body + b"\n\n"


def json_media_type(value: str) -> bool:
    """Whether a Content-Type is JSON exactly: `application/json`, at most `charset=utf-8`
    (the body is read as UTF-8); `application/jsonx` or `application/json-seq` are not."""
    media, _, parameters = value.partition(";")
    if media.strip().lower() != "application/json":
        return False
    for parameter in parameters.split(";"):
        if not parameter.strip():
            continue
        name, _, setting = parameter.partition("=")
        if name.strip().lower() != "charset" or setting.strip().strip('"').lower() != "utf-8":
            return False
    return True


def _repeated(raw: list[tuple[str, str]]) -> str | None:
    seen: set[str] = set()
    for name, _ in raw:
        if name in SINGLE_HEADERS:
            if name in seen:
                return name
            seen.add(name)
    return None


def _host_allowed(value: str | None, allowed: tuple[str, ...]) -> bool:
    if not value:
        return False
    return any(value == a or (a.endswith(":*") and value.startswith(a[:-1])) for a in allowed)


class McpHttp:
    """The ASGI app. `allowed_hosts` () accepts any Host (the sidecar network is the boundary)."""

    def __init__(
        self,
        gate: Tools,
        info: ServerInfo,
        *,
        allowed_hosts: tuple[str, ...] = (),
        path: str = "/mcp",
        max_body_bytes: int = MAX_BODY_BYTES,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.gate = gate
        self.info = info
        self.allowed_hosts = allowed_hosts
        self.allowed_origins = tuple(f"http://{h}" for h in allowed_hosts)
        self.path = path
        self.max_body_bytes = max_body_bytes
        self.max_sessions = max_sessions
        self.sessions: OrderedDict[str, str] = OrderedDict()  # id -> negotiated version
        self._listing: tuple[object, dict[str, dict[str, Any]]] = (None, {})
        self._calls: dict[tuple[str, object], anyio.CancelScope] = {}  # requests in flight
        self.log_levels: dict[str, str] = {}  # session -> the level it set (logs relayed)
        self.capabilities: dict[str, frozenset[str]] = {}  # session -> requests it can answer
        # Requests forwarded to a client and not yet answered, with the stream they went on.
        self._asks: dict[tuple[str, str], tuple[asyncio.Future[Any], Listener]] = {}
        self.watching: dict[str, Listener] = {}  # session -> its stream of resource updates
        self._following: set[str] = set()  # sessions whose GET stream is open

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI, for any ASGI server and for tests; `server.py` calls `respond` directly."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets here
        body = await self._body(receive)
        raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        reply = await self.respond(scope["method"], scope["path"], raw, body)
        await reply.send(send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def respond(
        self, method: str, path: str, raw: list[tuple[str, str]], body: bytes | None
    ) -> Reply:
        """The reply to one HTTP request; `raw` holds lower-case header names, `body` is None
        when it was over the limit (and not kept)."""
        try:
            return await self._respond(method, path, raw, body)
        except Exception:  # a request's top level: log it and fail closed, no internals out
            logger.exception("MCP request failed")
            return _json(500, RpcError(INTERNAL_ERROR, "Internal error").body())

    async def _respond(
        self, method: str, path: str, raw: list[tuple[str, str]], body: bytes | None
    ) -> Reply:
        if path != self.path:
            return _text(404, "Not Found")
        twice = _repeated(raw)
        if twice is not None:
            return await self._refused(
                _text(400, f"Bad Request: the {twice} header appears more than once"),
                method,
                f"the {twice} header appears more than once",
            )
        headers = dict(raw)
        if self.allowed_hosts:  # DNS-rebinding guard, as the SDK's transport security
            if not _host_allowed(headers.get("host"), self.allowed_hosts):
                why = f"Host {headers.get('host', '')[:100]!r} is not allowed"
                return await self._refused(_text(421, f"Invalid Host header: {why}"), method, why)
            origin = headers.get("origin")
            if origin and not _host_allowed(origin, self.allowed_origins):
                why = f"Origin {origin[:100]!r} is not allowed"
                return await self._refused(_text(403, f"Invalid Origin header: {why}"), method, why)
        if method == "POST":
            return await self._post(raw, headers, body)
        if method == "DELETE":
            return self._delete(headers)
        if method == "GET":
            return self._get(headers)
        return _text(405, "Method Not Allowed", (b"allow", b"GET, POST, DELETE"))

    async def _post(
        self, raw: list[tuple[str, str]], headers: dict[str, str], body: bytes | None
    ) -> Reply:
        if not json_media_type(headers.get("content-type", "")):
            media = headers.get("content-type", "")[:100]
            error = RpcError(INVALID_REQUEST, "Unsupported Media Type: send application/json")
            return await self._refused(
                _json(415, error.body()), "POST", f"Content-Type {media!r} is not application/json"
            )
        if not accepts_json(headers.get("accept", "")):
            error = RpcError(INVALID_REQUEST, "Not Acceptable: the client must accept JSON")
            return _json(406, error.body())
        if body is None:
            error = RpcError(INVALID_REQUEST, f"Request body over {self.max_body_bytes} bytes")
            return await self._refused(_json(413, error.body()), "POST", error.message)
        version = headers.get("mcp-protocol-version")
        if version is None or version in HANDSHAKE_PROTOCOL_VERSIONS:
            return await self._handshake_era(body, headers)
        if version in MODERN_PROTOCOL_VERSIONS:
            return await self._modern(body, raw, headers)
        rejection = _inbound().unsupported_protocol_version_rejection(version, _ALL_VERSIONS)
        assert rejection is not None
        return _rejection(rejection, None)

    async def _refused(self, reply: Reply, request: str, reason: str) -> Reply:
        """`reply`, once the refusal is in the audit (a malformed request is a denied call)."""
        await self.gate.refuse(request, reason)
        return reply

    async def _malformed(self, exc: RpcError, session: str | None = None) -> Reply:
        reply = _json(exc.status, exc.body(), session)
        if exc.code in (PARSE_ERROR, INVALID_REQUEST):
            await self.gate.refuse("POST", exc.message)
        return reply

    async def _body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)  # disconnected: what came parses or is refused
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    # -- handshake era: initialize, then a session ------------------------------------------

    async def _handshake_era(self, body: bytes, headers: dict[str, str]) -> Reply:
        session = headers.get("mcp-session-id")
        if session is not None and session not in self.sessions:
            return _json(404, RpcError(INVALID_REQUEST, "Session not found").body())
        try:
            message = parse_message(body)
        except RpcError as exc:
            return await self._malformed(exc, session)
        if isinstance(message, Request) and message.method == "initialize":
            return self._initialize(message, session)
        if session is None:
            error = RpcError(INVALID_REQUEST, "Bad Request: Missing session ID (initialize first)")
            return _json(400, error.body())
        self.sessions.move_to_end(session)
        if not isinstance(message, Request):
            if isinstance(message, Notification) and message.method == "notifications/cancelled":
                self._cancel(session, message.params.get("requestId"))
            if isinstance(message, Response):
                self._answered(session, message)
            return Reply(202, b"", ((b"mcp-session-id", session.encode()),))
        version = self.sessions[session]
        listener = self._listener(message, session, headers)
        if listener is not None:
            return self._streamed(message, session, version, listener)
        return _json(200, await self._answer(message, session, version), session)

    async def _answer(
        self, message: Request, session: str, version: str, listener: Listener | None = None
    ) -> bytes:
        """The JSON-RPC response to an in-session request (errors ride a 200, as the SDK's)."""
        key = (session, message.id)
        try:
            with anyio.CancelScope() as scope:
                # `notifications/cancelled` naming this request cancels it here, and the
                # backend session tells the backend (stdio.py); the outcome line says so.
                self._calls[key] = scope
                try:
                    result = await self._dispatch(
                        message, version, session=session, listener=listener
                    )
                finally:
                    self._calls.pop(key, None)
        except RpcError as exc:
            exc.id = message.id
            return exc.body()
        if scope.cancelled_caught:
            return RpcError(REQUEST_CANCELLED, "Request cancelled", id=message.id).body()
        if message.method == "logging/setLevel":  # checked by _dispatch
            self.log_levels[session] = message.params["level"]
        return result_body(message.id, result)

    def _listener(self, message: Request, session: str, headers: dict[str, str]) -> Listener | None:
        """A stream for this tools/call's notifications, when its client can take one and
        asked for something to be relayed (a progress token, a log level); else None."""
        if message.method != "tools/call" or not accepts_sse(headers.get("accept", "")):
            return None
        token = notices.client_token(message.params.get("_meta"))
        level = self.log_levels.get(session)
        capabilities = self.capabilities.get(session, frozenset())
        if token is None and level is None and not capabilities:
            return None
        listener = Listener(token, level, max_total=MAX_CALL_EVENTS, capabilities=capabilities)
        if capabilities:
            listener.ask = lambda method, params: self._ask(session, listener, method, params)
        return listener

    async def _ask(
        self, session: str, listener: Listener, method: str, params: dict[str, Any]
    ) -> Any:
        """A backend's request, decided already (gate.py), sent on the call's stream: the
        client's result, or RpcError with its error. The answer must come from this session."""
        request_id = "ic-" + secrets.token_hex(12)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        key = (session, request_id)
        self._asks[key] = (future, listener)
        try:
            message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
            if not listener.offer(message):
                raise RpcError(INTERNAL_ERROR, "the call's stream is full or closed")
            return await future
        finally:
            self._asks.pop(key, None)

    def _unanswerable(self, listener: Listener) -> None:
        """The call's stream ended: what was asked on it can no longer be answered."""
        for future, on in list(self._asks.values()):
            if on is listener and not future.done():
                future.set_exception(RpcError(INTERNAL_ERROR, "the call ended before an answer"))

    def _answered(self, session: str, message: Response) -> None:
        """A client's answer to a request we sent it; any other is dropped."""
        if not isinstance(message.id, str):
            return
        future, _ = self._asks.get((session, message.id), (None, None))
        if future is None or future.done():
            return
        error = message.error
        if isinstance(error, dict):
            text = error.get("message")
            future.set_exception(
                RpcError(INTERNAL_ERROR, text if isinstance(text, str) else "an error")
            )
        else:
            future.set_result(message.result)

    def _streamed(self, message: Request, session: str, version: str, listener: Listener) -> Reply:
        """The call's notifications as events while it runs, then its response."""

        async def produce(write: Write) -> None:
            answer: list[bytes] = []

            async def run() -> None:
                try:
                    answer.append(await self._answer(message, session, version, listener))
                except Exception:  # a request's top level: log it and fail closed
                    logger.exception("MCP request failed")
                    answer.append(RpcError(INTERNAL_ERROR, "Internal error", id=message.id).body())
                finally:
                    listener.close()
                    self._unanswerable(listener)

            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                while (event := await listener.next()) is not None:
                    data = notices.sse(event)
                    if data is not None:
                        await write(data)
            await write(_event(answer[0]))

        headers = (_SSE, _NO_CACHE, (b"mcp-session-id", session.encode()))
        return Reply(200, b"", headers, stream=produce)

    def _get(self, headers: dict[str, str]) -> Reply:
        """A session's standalone stream: the updates of the resources it subscribed to."""
        session = headers.get("mcp-session-id")
        listener = self.watching.get(session) if session is not None else None
        if session is None or listener is None or not accepts_sse(headers.get("accept", "")):
            # Nothing to follow (no subscription yet): no stream, as the spec allows.
            return _text(405, "Method Not Allowed", (b"allow", b"POST, DELETE"))
        if session in self._following:
            return _text(409, "Conflict: this session's stream is already open")
        self.sessions.move_to_end(session)
        self._following.add(session)  # until the stream ends (server.py always runs it)

        async def produce(write: Write) -> None:
            try:
                while (event := await listener.next()) is not None:
                    data = notices.sse(event)
                    if data is not None:
                        await write(data)
            finally:
                self._following.discard(session)

        reply_headers = (_SSE, _NO_CACHE, (b"mcp-session-id", session.encode()))
        return Reply(200, b"", reply_headers, stream=produce, follow=True)

    def _forget(self, session: str) -> None:
        """A session ended or was evicted: its level, subscriptions and stream go with it."""
        self.log_levels.pop(session, None)
        self.capabilities.pop(session, None)
        listener = self.watching.pop(session, None)
        if listener is not None:
            listener.close()
            self.gate.forget(listener)

    def _cancel(self, session: str, request_id: object) -> None:
        if isinstance(request_id, (str, int)) and not isinstance(request_id, bool):
            scope = self._calls.get((session, request_id))
            if scope is not None:
                scope.cancel()

    def _initialize(self, message: Request, session: str | None) -> Reply:
        try:
            result = protocol.initialize_result(self.info, message.params)
        except RpcError as exc:
            exc.id = message.id
            return _json(400, exc.body(), session)
        if session is None:
            session = secrets.token_hex(16)
            while len(self.sessions) >= self.max_sessions:
                self._forget(self.sessions.popitem(last=False)[0])
        self.sessions[session] = result["protocolVersion"]
        self.sessions.move_to_end(session)
        declared = message.params["capabilities"]  # checked by initialize_result
        self.capabilities[session] = frozenset(
            method
            for method, name in notices.CAPABILITY.items()
            if isinstance(declared.get(name), dict)
        )
        return _json(200, result_body(message.id, result), session)

    def _delete(self, headers: dict[str, str]) -> Reply:
        session = headers.get("mcp-session-id")
        if session is None:
            return _text(400, "Bad Request: Missing session ID")
        if self.sessions.pop(session, None) is None:
            return _text(404, "Session not found")
        self._forget(session)
        return Reply(200)

    # -- per-request envelope (2026-07-28) ---------------------------------------------------

    async def _modern(
        self, body: bytes, raw: list[tuple[str, str]], headers: dict[str, str]
    ) -> Reply:
        try:
            message = parse_message(body)
        except RpcError as exc:
            return await self._malformed(exc)
        if isinstance(message, Notification):
            return Reply(202)  # nothing to act on per request; acknowledged as the SDK does
        if isinstance(message, Response):
            error = RpcError(INVALID_REQUEST, "Body must be a JSON-RPC request or notification")
            return _json(400, error.body())
        inbound = _inbound()
        duplicated = inbound.find_duplicated_routing_header(raw)
        if duplicated is not None:
            twice = f"{duplicated} header appears more than once"
            return _rejection(inbound.InboundLadderRejection(HEADER_MISMATCH, twice), message.id)
        envelope = {"method": message.method, "params": message.params}
        verdict = inbound.classify_inbound_request(envelope, headers=headers)
        if isinstance(verdict, inbound.InboundLadderRejection):
            return _rejection(verdict, message.id)
        try:
            result = await self._dispatch(message, verdict.protocol_version, headers)
        except RpcError as exc:
            exc.id = message.id
            return _json(inbound.ERROR_CODE_HTTP_STATUS.get(exc.code, 200), exc.body())
        return _json(200, result_body(message.id, result))

    # -- methods -----------------------------------------------------------------------------

    async def _dispatch(
        self,
        message: Request,
        version: str,
        headers: dict[str, str] | None = None,
        *,
        session: str | None = None,
        listener: Listener | None = None,
    ) -> dict[str, Any]:
        method = message.method
        if method == "tools/call":
            name, arguments = protocol.call_arguments(message.params)
            if headers is not None:
                self._check_param_headers(name, arguments, headers)
            if listener is None:
                result = await self.gate.call(name, arguments)
            else:
                result = await self.gate.call(name, arguments, listener=listener)
            dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
            return protocol.shape(self.info, method, version, dumped)
        if method == "tools/list":
            return self._tools(version)
        if method == "ping":
            return protocol.shape(self.info, method, version, {})
        if method == "logging/setLevel" and version in HANDSHAKE_PROTOCOL_VERSIONS:
            protocol.log_level(message.params)  # checked; kept per session by _answer
            return protocol.shape(self.info, method, version, {})
        if method in protocol.SUBSCRIPTION_METHODS and session is not None:
            uri = protocol.uri_param(message.params, method)
            stream = self.watching.get(session)
            if method == "resources/unsubscribe":
                result = {} if stream is None else await self.gate.unsubscribe(uri, stream)
                return protocol.shape(self.info, method, version, result)
            # One stream per session, made before the decision (a refused subscribe leaves it
            # empty), so that concurrent subscribes share it; it ends with the session.
            stream = self.watching.setdefault(session, Listener())
            result = await self.gate.subscribe(uri, stream)
            if self.watching.get(session) is not stream:  # the session ended meanwhile
                self.gate.forget(stream)
            return protocol.shape(self.info, method, version, result)
        if method in protocol.CATALOG_METHODS:
            return protocol.shape(self.info, method, version, await self._catalog(message))
        if method == "server/discover" and version in MODERN_PROTOCOL_VERSIONS:
            return protocol.discover_result(self.info, version)
        raise RpcError(METHOD_NOT_FOUND, "Method not found", data=method, status=404)

    async def _catalog(self, message: Request) -> dict[str, Any]:
        method, params = message.method, message.params
        if method == "resources/list":
            return await self.gate.list_resources()
        if method == "resources/templates/list":
            return await self.gate.list_resource_templates()
        if method == "prompts/list":
            return await self.gate.list_prompts()
        if method == "resources/read":
            return await self.gate.read_resource(protocol.read_uri(params))
        if method == "completion/complete":
            return await self.gate.complete(params)
        name, arguments = protocol.prompt_arguments(params)
        return await self.gate.get_prompt(name, arguments)

    def _check_param_headers(
        self, name: str, arguments: dict[str, Any], headers: dict[str, str]
    ) -> None:
        """2026-07-28: `Mcp-Param-*` headers must agree with the arguments they mirror."""
        if not arguments and not any(h.startswith("mcp-param-") for h in headers):
            return
        schema = self.gate.input_schema(name)
        if schema is None:
            return  # an unknown tool: the gate denies it, audited
        rejection = _inbound().validate_mcp_param_headers(schema, arguments, headers)
        if rejection is not None:
            raise RpcError(rejection.code, rejection.message, data=rejection.data)

    def _tools(self, version: str) -> dict[str, Any]:
        tools = self.gate.tools()  # the same list object until a backend restarts
        source, shaped = self._listing
        if source is not tools:
            shaped = {}
            self._listing = (tools, shaped)
        if version not in shaped:
            shaped[version] = protocol.shape(self.info, "tools/list", version, {"tools": tools})
        return shaped[version]
