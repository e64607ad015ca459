"""The sandbox: MCP servers that may run programs the agent wrote, served to the proxy over HTTP.

git runs the filter drivers, textconv and merge commands that a repository's own `.git/config`
names, and the agent writes that file. Run beside the policy proxy, such a program would hold the
proxy's Redis password (to approve its own escalations), its audit log and its egress leg. So a
session runs these servers (`sandbox: true` in servers.yaml) in a container of their own with the
workspace and nothing else: no secrets, no audit log, and one internal network on which only the
proxy is a neighbour. Each server is one child process (restarted like any backend), reached by
the proxy at `/NAME/mcp`. The policy is not checked here: the proxy has decided before a call
arrives, and this process is as untrusted as what it runs.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable, Sequence

import anyio
import mcp_types as types
import uvicorn
from mcp.server import Server
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette

from .. import __version__
from .backend import Backend, BackendDown
from .cache import ToolCache
from .config import BackendSpec

logger = logging.getLogger(__name__)

CALL_TIMEOUT_S = 600.0  # the proxy keeps its own, shorter deadline per call


def relay(backend: Backend) -> Server:
    """An MCP server that offers `backend`'s tools as they are and forwards every call."""

    async def list_tools(ctx: object, params: object) -> types.ListToolsResult:
        return types.ListToolsResult(tools=list(backend.tools.values()))

    async def call_tool(ctx: object, params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            return await backend.call(params.name, params.arguments or {}, CALL_TIMEOUT_S)
        except BackendDown as exc:
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=str(exc))], is_error=True
            )

    return Server(
        f"ironcurtain-sandbox-{backend.name}",
        version=__version__,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def http_app(backends: Sequence[Backend], allowed_hosts: Sequence[str]) -> Starlette:
    """One Starlette app with every backend at /NAME/mcp (JSON responses, Host checked)."""
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=bool(allowed_hosts),
        allowed_hosts=list(allowed_hosts),
        allowed_origins=[f"http://{h}" for h in allowed_hosts],
    )
    apps = [
        relay(b).streamable_http_app(
            streamable_http_path=f"/{b.name}/mcp", json_response=True, transport_security=security
        )
        for b in backends
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for child in apps:
                await stack.enter_async_context(child.router.lifespan_context(child))
            yield

    return Starlette(routes=[r for child in apps for r in child.routes], lifespan=lifespan)


async def serve_sandbox(
    specs: Sequence[BackendSpec],
    host: str,
    port: int,
    allowed_hosts: Sequence[str] = (),
    *,
    tools_cache: ToolCache | None = None,
    started: Callable[[int], None] | None = None,
) -> None:
    """Run the sandboxed servers and serve them until cancelled.

    With `tools_cache`, a server whose listing was saved starts on its first call."""
    from .service import bind  # one socket recipe (TCP_NODELAY) for both servers

    backends = [
        Backend(spec, cached=tools_cache.get(spec) if tools_cache else None)
        for spec in specs
        if spec.sandbox
    ]
    if not backends:
        raise ValueError("no server in the backends file is marked sandbox: true")
    async with anyio.create_task_group() as tg:
        for backend in backends:
            tg.start_soon(backend.run, name=f"backend {backend.name}")
        for backend in backends:  # the port opens once every tool list is known
            await backend.wait_ready()
        sock = bind(host, port)
        try:
            await _serve_http(backends, sock, allowed_hosts, started)
        finally:
            sock.close()  # after uvicorn stopped: it closes its connections first
            tg.cancel_scope.cancel()


async def _serve_http(
    backends: Sequence[Backend],
    sock: socket.socket,
    allowed_hosts: Sequence[str],
    started: Callable[[int], None] | None,
) -> None:
    server = uvicorn.Server(
        uvicorn.Config(
            http_app(backends, allowed_hosts),
            log_level="warning",
            http="httptools",
            lifespan="on",
            access_log=False,
        )
    )
    async with anyio.create_task_group() as tg:

        async def http() -> None:
            with anyio.CancelScope(shield=True):  # stopped by should_exit, cleanly
                await server.serve([sock])
            tg.cancel_scope.cancel()

        tg.start_soon(http)
        try:
            while not server.started:  # uvicorn offers no event; its own loop polls likewise
                await anyio.sleep(0.01)
            host, port = sock.getsockname()[:2]
            logger.info("sandbox serving %s on %s:%d", [b.name for b in backends], host, port)
            if started is not None:
                started(port)
            await anyio.sleep_forever()
        finally:
            server.should_exit = True
