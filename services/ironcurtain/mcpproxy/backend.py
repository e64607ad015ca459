"""One backend MCP server: started (or reached), watched, restarted with back-off.

Given a saved listing of its tools (cache.py), the backend starts on its first call instead of
at once: the listing answers `tools/list` and checks arguments meanwhile. When it does start and
lists tools that differ from the saved ones (drift), the live listing replaces them and every
call is checked again against the live tools before it is forwarded (fail closed).

The supervisor task owns the client connection. Calls come from request tasks; a call made while
the backend is down waits briefly for it, then fails with BackendDown; a call in flight when the
child dies gets CONNECTION_CLOSED from the session, turned into BackendDown here (never a hang).
A command backend is spoken to by our lean stdio session (stdio.py), a sandboxed one by the same
session over TCP to its pipe in the sandbox; a URL one by the SDK client.

Tools are plain JSON in the stored form (listing.py checks them: a malformed listing fails the
start). jsonschema loads with the first argument check, on the first tools/call, and each tool's
validator is built on its first call: the proxy's start needs neither. When a backend starts,
the SDK's result models are loaded on a thread meanwhile (`preload`): the child's start and the
import overlap on two cores instead of adding up on the first call.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from . import cache, listing
from .config import BackendSpec
from .errors import BackendError
from .jsonrpc import METHOD_NOT_FOUND
from .stdio import MAX_LINE_BYTES, SocketClient, StdioClient
from .streams import Listener, Router
from .wire import CONNECTION_CLOSED

if TYPE_CHECKING:
    import jsonschema
    import mcp_types as types

logger = logging.getLogger(__name__)


def reason(exc: BaseException) -> str:
    """One line on why: the first real error inside task-group wrappers, not the wrapper."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"[:300]


_MODELS = ("mcp_types.methods", "jsonschema")  # what a backend's first call needs
_preloading = threading.Lock()
_preloaded = threading.Event()


def _load_models() -> None:
    for name in _MODELS:
        try:
            importlib.import_module(name)
        except Exception:  # the importing caller meets the same error, where it is handled
            logger.exception("preloading %s failed", name)


def preload() -> None:
    """Start loading the SDK's models on a daemon thread, once per process (an import that
    finds one half done waits for it, under the import system's module lock)."""
    with _preloading:
        if _preloaded.is_set():
            return
        _preloaded.set()
    threading.Thread(target=_load_models, name="preload-models", daemon=True).start()


class BackendDown(Exception):
    """The backend is not running, or stopped during the call."""


class Session(Protocol):
    """What a backend needs of its MCP client session (the SDK's Client, or StdioClient)."""

    async def list_tools(self, cursor: str | None = None) -> types.ListToolsResult: ...

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        read_timeout_seconds: float,
        meta: Mapping[str, Any] | None = None,
    ) -> types.CallToolResult: ...

    async def request(
        self, method: str, params: Mapping[str, Any], timeout_s: float
    ) -> dict[str, Any]: ...  # resources and prompts (REQUESTS): the result as plain JSON


# What a backend is asked besides tools: resources and prompts, each result plain JSON.
REQUESTS = frozenset(
    {
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "resources/subscribe",
        "resources/unsubscribe",
    }
)


class RemoteSession:
    """The SDK's client for a `url` backend, raising BackendError like our own sessions. The SDK
    is imported only here: no proxy without a remote backend pays for it at start-up."""

    def __init__(self, url: str) -> None:
        from mcp import Client

        self._client = Client(url, cache=None)

    async def __aenter__(self) -> RemoteSession:
        with _as_backend_error():
            await self._client.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._client.__aexit__(*exc)

    async def list_tools(self, cursor: str | None = None) -> types.ListToolsResult:
        with _as_backend_error():
            return await self._client.list_tools(cursor=cursor)

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        read_timeout_seconds: float,
        meta: Mapping[str, Any] | None = None,
    ) -> types.CallToolResult:
        # A url backend's notifications are not relayed (streams.py routes stdio and room
        # backends'): our progress token is not sent to it.
        with _as_backend_error():
            return await self._client.call_tool(
                name, dict(arguments), read_timeout_seconds=read_timeout_seconds
            )

    async def request(
        self, method: str, params: Mapping[str, Any], timeout_s: float
    ) -> dict[str, Any]:
        client = self._client
        cursor = params.get("cursor")
        with _as_backend_error(), anyio.fail_after(timeout_s):
            if method == "resources/list":
                result: Any = await client.list_resources(cursor=cursor, cache_mode="bypass")
            elif method == "resources/templates/list":
                result = await client.list_resource_templates(cursor=cursor, cache_mode="bypass")
            elif method == "resources/read":
                result = await client.read_resource(params["uri"], cache_mode="bypass")
            elif method == "prompts/list":
                result = await client.list_prompts(cursor=cursor, cache_mode="bypass")
            elif method == "prompts/get":
                result = await client.get_prompt(params["name"], params.get("arguments"))
            elif method == "completion/complete":
                import mcp_types as types

                ref = params["ref"]
                reference: types.PromptReference | types.ResourceTemplateReference = (
                    types.PromptReference.model_validate(ref)
                    if ref.get("type") == "ref/prompt"
                    else types.ResourceTemplateReference.model_validate(ref)
                )
                context = params.get("context") or {}
                result = await client.complete(
                    reference, params["argument"], context.get("arguments")
                )
            else:  # subscriptions: a url backend's updates are not relayed (streams.py)
                raise BackendError(METHOD_NOT_FOUND, f"{method} is not carried to url backends")
        dumped: dict[str, Any] = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        return dumped


@contextmanager
def _as_backend_error() -> Iterator[None]:
    from mcp.shared.exceptions import MCPError

    try:
        yield
    except MCPError as exc:
        raise BackendError(exc.code, exc.error.message, exc.error.data) from None


class Backend:
    def __init__(
        self,
        spec: BackendSpec,
        extra_env: Mapping[str, str] | None = None,
        *,
        backoff_min_s: float = 0.2,
        backoff_max_s: float = 30.0,
        watch_s: float = 2.0,
        wait_ready_s: float = 10.0,
        cached: Sequence[dict[str, Any]] | None = None,
        first_start_s: float = 60.0,
        wake: Callable[[], None] | None = None,
        max_result_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.spec = spec
        self.max_result_bytes = max_result_bytes  # the longest answer read (stdio and sandbox)
        self._wake = wake  # a sandboxed server: asks for the sandbox container (on demand)
        self._extra_env = dict(extra_env or {})
        self._backoff = (backoff_min_s, backoff_max_s)
        self._watch_s = watch_s
        self._wait_ready_s = wait_ready_s
        self._client: Session | None = None
        self._ready = anyio.Event()
        self._dead = anyio.Event()
        self.tools: dict[str, dict[str, Any]] = {}  # name -> tool in the stored form
        # Built on a tool's first call; None: its input schema is invalid (calls denied).
        self._validators: dict[str, jsonschema.protocols.Validator | None] = {}
        self.starts = 0
        self.last_error = ""  # why the last start or session failed, for start-up errors
        self._wanted = anyio.Event()  # set: start (at once, or on the first call when cached)
        self._cached = None if cached is None else cache.ordered(listing.check_all(list(cached)))
        self._first_start_s = first_start_s
        self.drifted = False  # the live listing differs from the saved one
        self.router = Router()  # its notifications to the client streams they belong to
        if self._cached is None:
            self._wanted.set()
        else:
            self._set_tools({t["name"]: t for t in self._cached})

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def running(self) -> bool:
        return self._client is not None

    @property
    def on_demand(self) -> bool:
        """Started on its first call (a saved listing stands in until then)."""
        return self._cached is not None

    @property
    def ready(self) -> bool:
        """Calls can be served: it runs, or it starts on demand from a saved listing."""
        return self.running or (self.on_demand and not self._wanted.is_set())

    async def wait_ready(self) -> None:
        """Until calls can be served: at once for an on-demand backend not yet asked for."""
        if self.ready:
            return
        await self._ready.wait()

    def _session(self) -> AbstractAsyncContextManager[Session]:
        if self.spec.url is not None:
            return RemoteSession(self.spec.url)
        if self.spec.address is not None:
            return SocketClient(
                *self.spec.address,
                wake=self._wake,
                max_line_bytes=self.max_result_bytes,
                on_notification=self.router.deliver,
                on_request=self.router.serve,
            )
        assert self.spec.command is not None
        return StdioClient(
            self.spec.command,
            list(self.spec.args),
            {**self.spec.env, **self._extra_env},
            max_line_bytes=self.max_result_bytes,
            on_notification=self.router.deliver,
            on_request=self.router.serve,
        )

    async def run(self) -> None:
        """Forever: connect, serve calls until the backend dies, wait, reconnect."""
        await self._wanted.wait()
        preload()
        delay = self._backoff[0]
        while True:
            began = anyio.current_time()
            try:
                await self._connect_and_watch()
            except anyio.get_cancelled_exc_class():
                raise
            except Exception as exc:
                self.last_error = reason(exc)
                logger.exception("backend %s failed; restarting in %.1f s", self.name, delay)
            finally:
                self._client = None
                if self._ready.is_set():
                    self._ready = anyio.Event()
            if anyio.current_time() - began > 60:  # it ran a good while: start over gently
                delay = self._backoff[0]
            await anyio.sleep(delay)  # back-off between restarts, not a wait for a condition
            delay = min(delay * 2, self._backoff[1])

    async def _connect_and_watch(self) -> None:
        async with self._session() as client:
            await self._list(client)
            self.starts += 1  # after the listing: Gate rebuilds its tool list on this
            self._dead = anyio.Event()
            self._client = client
            self._ready.set()
            logger.info("backend %s up with %d tools", self.name, len(self.tools))
            await self._renew(client)
            while True:
                with anyio.move_on_after(self._watch_s):
                    await self._dead.wait()
                if self._dead.is_set():
                    return
                try:
                    with anyio.fail_after(self._watch_s * 2):
                        # A real request as the liveness probe (ping is gone from newer
                        # protocol versions); any answer proves the server alive.
                        await client.list_tools()
                except BackendError as exc:
                    if exc.code == CONNECTION_CLOSED:
                        logger.warning("backend %s died; restarting", self.name)
                        return
                except TimeoutError:
                    logger.warning("backend %s stopped answering; restarting", self.name)
                    return

    async def _renew(self, client: Session) -> None:
        """A restarted backend forgot its subscriptions: each URI a session still watches here
        (each subscribe was decided and audited, gate.py) is subscribed to again."""
        for uri in self.router.watched_uris():
            try:
                await client.request("resources/subscribe", {"uri": uri}, self._watch_s * 2)
            except (BackendError, TimeoutError) as exc:
                logger.warning("backend %s: renewing a subscription failed: %s", self.name, exc)

    async def _list(self, client: Session) -> None:
        tools: dict[str, dict[str, Any]] = {}
        cursor = None
        for _ in range(100):  # a paginator that never ends cannot hang start-up
            page = await client.list_tools(cursor=cursor)
            # Malformed for some version (ListingError): the start fails, saying why.
            tools.update({t["name"]: t for t in listing.check_all(cache.dump(page.tools))})
            cursor = page.next_cursor
            if not cursor:
                break
        if self._cached is not None and cache.ordered(tools.values()) != self._cached:
            if not self.drifted:
                logger.warning(
                    "backend %s lists other tools than its saved listing; using the live ones "
                    "and checking every call again (rebuild the mcp-proxy image)",
                    self.name,
                )
            self.drifted = True
        self._set_tools(tools)

    def _set_tools(self, tools: dict[str, dict[str, Any]]) -> None:
        self.tools = tools
        self._validators = {}

    def _validator(self, tool: str) -> jsonschema.protocols.Validator | None:
        if tool in self._validators:
            return self._validators[tool]
        import jsonschema  # the first call's argument check loads it: see the module doc

        schema = self.tools[tool]["inputSchema"]
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        validator = None
        try:
            cls.check_schema(schema)
            validator = cls(schema)
        except jsonschema.SchemaError:
            logger.warning("backend %s: tool %s has an invalid input schema", self.name, tool)
        self._validators[tool] = validator
        return validator

    def schema_problem(self, tool: str, arguments: Mapping[str, Any]) -> str | None:
        """Why the arguments do not fit the tool's input schema, or None if they do."""
        validator = self._validator(tool) if tool in self.tools else None
        if validator is None:
            return f"{self.name} offers no tool {tool!r} with a valid input schema"
        import jsonschema

        error = jsonschema.exceptions.best_match(validator.iter_errors(dict(arguments)))
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path) or "arguments"
        return f"{where}: {error.message[:300]}"

    async def request(
        self, method: str, params: Mapping[str, Any], timeout_s: float
    ) -> dict[str, Any]:
        """One of REQUESTS (resources, prompts) forwarded as it is; the result plain JSON."""
        if method not in REQUESTS:
            raise ValueError(f"not a request a backend is asked: {method}")
        client = await self._connected()
        try:
            with self.router.forwarding(None):  # counted: a log meanwhile is nobody's for sure
                return await client.request(method, dict(params), timeout_s)
        except BackendError as exc:
            if exc.code == CONNECTION_CLOSED:
                self._dead.set()
                raise BackendDown(f"backend {self.name!r} stopped during the request") from None
            raise

    async def _connected(self) -> Session:
        client = self._client
        if client is None:
            first = not self._wanted.is_set()
            self._wanted.set()
            with anyio.move_on_after(self._first_start_s if first else self._wait_ready_s):
                await self._ready.wait()
            client = self._client
            if client is None:
                if first or not self.starts:
                    why = self.last_error or "not ready in time"
                    raise BackendDown(f"backend {self.name!r} did not start: {why}")
                raise BackendDown(f"backend {self.name!r} is not running (it is being restarted)")
        return client

    async def call(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        timeout_s: float,
        listener: Listener | None = None,
    ) -> types.CallToolResult:
        """The tool's result; with `listener`, its progress and log notifications go to it."""
        client = await self._connected()
        if self.drifted:
            # The caller checked the saved listing; the live one differs: check again.
            if tool not in self.tools:
                raise BackendDown(f"backend {self.name!r} no longer offers {tool!r}")
            problem = self.schema_problem(tool, arguments)
            if problem is not None:
                raise BackendDown(f"backend {self.name!r}: the arguments no longer fit: {problem}")
        try:
            with self.router.forwarding(listener) as meta:
                return await client.call_tool(
                    tool, dict(arguments), read_timeout_seconds=timeout_s, meta=meta
                )
        except BackendError as exc:
            if exc.code == CONNECTION_CLOSED:
                self._dead.set()
                raise BackendDown(f"backend {self.name!r} stopped during the call") from None
            raise
