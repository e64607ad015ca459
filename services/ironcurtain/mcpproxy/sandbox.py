"""The sandbox: MCP servers that may run programs the agent wrote, served to the proxy over HTTP.

git runs the filter drivers, textconv and merge commands that a repository's own `.git/config`
names, and the agent writes that file. Run beside the policy proxy, such a program would hold the
proxy's Redis password (to approve its own escalations), its audit log and its egress leg. So a
session runs these servers (`sandbox: true` in servers.yaml) in a container of their own with the
workspace and nothing else: no secrets, no audit log, and one internal network on which only the
proxy is a neighbour. Each server is one child process (restarted like any backend; started on
its first call when its listing was saved), reached by the proxy at `/NAME/mcp` through the same
lean HTTP layer the proxy serves. The policy is not checked here: the proxy has decided before a
call arrives, and this process is as untrusted as what it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
import mcp_types as types

from .. import __version__
from .backend import Backend, BackendDown
from .cache import ToolCache
from .config import BackendSpec
from .http import McpHttp, Reply
from .protocol import ServerInfo
from .server import HttpServer

logger = logging.getLogger(__name__)

CALL_TIMEOUT_S = 600.0  # the proxy keeps its own, shorter deadline per call


class Relay:
    """One backend's tools as they are, every call forwarded (the `Tools` the HTTP layer needs)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def tools(self) -> list[types.Tool]:
        return list(self.backend.tools.values())

    def input_schema(self, name: str) -> Mapping[str, Any] | None:
        tool = self.backend.tools.get(name)
        return None if tool is None else tool.input_schema

    async def call(self, name: str, arguments: Mapping[str, Any] | None) -> types.CallToolResult:
        try:
            return await self.backend.call(name, arguments or {}, CALL_TIMEOUT_S)
        except BackendDown as exc:
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=str(exc))], is_error=True
            )


class Routes:
    """Each backend's MCP endpoint at `/NAME/mcp`; any other path is the first one's 404."""

    def __init__(self, apps: Sequence[McpHttp]) -> None:
        self.apps = {app.path: app for app in apps}
        self.fallback = apps[0]

    async def respond(
        self, method: str, path: str, raw: list[tuple[str, str]], body: bytes | None
    ) -> Reply:
        return await self.apps.get(path, self.fallback).respond(method, path, raw, body)


def http_app(backends: Sequence[Backend], allowed_hosts: Sequence[str]) -> Routes:
    return Routes(
        [
            McpHttp(
                Relay(b),
                ServerInfo(f"ironcurtain-sandbox-{b.name}", __version__, ""),
                allowed_hosts=tuple(allowed_hosts),
                path=f"/{b.name}/mcp",
            )
            for b in backends
        ]
    )


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
        server = HttpServer(http_app(backends, allowed_hosts))
        try:
            await server.start(sock)
            bound = sock.getsockname()[1]
            logger.info("sandbox serving %s on %s:%d", [b.name for b in backends], host, bound)
            if started is not None:
                started(bound)
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await server.close()
            sock.close()
            tg.cancel_scope.cancel()
