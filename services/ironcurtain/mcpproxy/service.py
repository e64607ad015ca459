"""The MCP policy proxy as a service: load policy and backends, start them, serve Streamable HTTP.

Entry point for the session orchestration:

    settings = ProxySettings(policy_dir=..., workspace=..., audit_file=..., port=8080)
    await serve(settings, escalator=RedisEscalator(...), started=lambda port: ...)

`escalator` is the injection point for the escalation channel (default: UnavailableEscalator).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from .. import __version__
from ..audit import DEFAULT_MAX_BYTES, DEFAULT_RESERVE_BYTES, AuditLog, new_key, read_key
from ..escalation.types import Escalator, UnavailableEscalator
from ..policy import Engine, FsResolver, load_policy
from .backend import Backend
from .cache import ToolCache
from .config import INLINE, UNIX, egress_socket, load_backends, place
from .egress import Egress, EgressRules
from .gate import Gate, SessionInfo, Timeouts
from .http import McpHttp
from .protocol import ServerInfo
from .server import HttpServer
from .stdio import MAX_LINE_BYTES

logger = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The proxy refuses to start (bad policy, protected path in the workspace, dead backend)."""


@dataclass(frozen=True, slots=True)
class ProxySettings:
    policy_dir: Path
    workspace: Path
    audit_file: Path
    host: str = "127.0.0.1"
    port: int = 8080
    policy_file: str = "policy.yaml"
    servers_file: str = "servers.yaml"
    state_dir: Path = Path("/var/lib/ironcurtain")
    ca_dir: Path = Path("/ca")
    secrets_dir: Path = Path("/run/secrets")
    session: SessionInfo = field(default_factory=SessionInfo)
    timeouts: Timeouts = field(default_factory=Timeouts)
    allowed_hosts: tuple[str, ...] = ()  # Host headers accepted (DNS-rebinding guard); () = any
    egress_addresses: frozenset[str] = frozenset()  # "ip:port" exceptions for the egress checker
    startup_timeout_s: float = 60.0  # every backend must be up by then, or the proxy refuses
    # Where command servers run: `unix:DIR`, the rooms' folders in a session; INLINE in tests;
    # "" (refuse them). The CLI has no default; this library default serves tests and benchmarks.
    sandbox: str = INLINE
    # A folder where the proxy creates NAME to ask `ironcurtain run` for server NAME's room,
    # started on its first call; None: the rooms are already running.
    sandbox_wake: Path | None = None
    tools_cache: Path | None = None  # saved tool listings: those backends start on first call
    # The audit chain's key (a compose secret in a session); None: a key made for this process
    # alone (tests), which `ironcurtain audit verify` cannot have.
    audit_key_file: Path | None = None
    max_result_bytes: int = MAX_LINE_BYTES  # a backend's larger answers are refused unread
    # The audit log's size limit: past it (less its reserve) every new call is refused.
    audit_max_bytes: int = DEFAULT_MAX_BYTES
    audit_reserve_bytes: int = DEFAULT_RESERVE_BYTES

    def variables(self) -> dict[str, str]:
        return {
            "workspace": str(self.workspace),
            "policy_dir": str(self.policy_dir),
            "audit_dir": str(self.audit_file.parent),
            "state_dir": str(self.state_dir),
            "ca_dir": str(self.ca_dir),
            "secrets_dir": str(self.secrets_dir),
        }


INSTRUCTIONS = "Every tool call is checked against the IronCurtain policy and audited."


def http_app(gate: Gate, settings: ProxySettings) -> McpHttp:
    """The Streamable HTTP endpoint (/mcp): our own lean ASGI app, JSON responses."""
    info = ServerInfo("ironcurtain-mcp-proxy", __version__, INSTRUCTIONS)
    return McpHttp(gate, info, allowed_hosts=settings.allowed_hosts)


def _asker(path: Path) -> Callable[[], None]:
    """Asks for a server's room by creating `path` (once; never through a link)."""

    def ask() -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        with contextlib.suppress(FileExistsError):  # asked already
            os.close(os.open(path, flags, 0o600))
        logger.info("asked for a room (%s)", path)

    return ask


@asynccontextmanager
async def running_gate(
    settings: ProxySettings, escalator: Escalator | None = None
) -> AsyncIterator[Gate]:
    """Policy loaded, backends started and listed, egress checker up: a Gate ready for calls."""
    variables = settings.variables()
    policy = load_policy(settings.policy_dir / settings.policy_file, variables)
    engine = Engine(policy, FsResolver(), time.monotonic)
    inside = engine.protected_in(str(settings.workspace))
    if inside:
        raise StartupError(
            f"the workspace {settings.workspace} contains protected paths: {', '.join(inside)}"
        )
    loaded = load_backends(settings.policy_dir / settings.servers_file, variables)
    # A sandboxed server's saved listing is its command's (the sandbox runs the same image), so
    # the proxy reaches the sandbox only on the server's first call, as for its own children.
    specs = tuple(zip(loaded, place(loaded, settings.sandbox), strict=True))
    egress = Egress(EgressRules(addresses=settings.egress_addresses))
    await egress.start()
    if settings.audit_key_file is None:
        logger.warning("no audit key file: the chain is keyed for this process only")
    key = read_key(settings.audit_key_file) if settings.audit_key_file else new_key()
    audit = AuditLog(
        settings.audit_file,
        key,
        max_bytes=settings.audit_max_bytes,
        reserve_bytes=settings.audit_reserve_bytes,
    )
    try:
        if settings.sandbox.startswith(UNIX):  # each room with network: egress gets its leg
            rooms = settings.sandbox.removeprefix(UNIX)
            for spec in loaded:
                if spec.sandbox and spec.egress:
                    await egress.serve_unix(egress_socket(rooms, spec.name), spec.name)
        saved = ToolCache(settings.tools_cache) if settings.tools_cache else None
        backends: dict[str, Backend] = {
            spec.name: Backend(
                spec,
                egress.env() if spec.egress else None,
                cached=saved.get(command) if saved else None,
                first_start_s=settings.startup_timeout_s,
                wake=_asker(settings.sandbox_wake / spec.name)
                if spec.address and settings.sandbox_wake
                else None,
                max_result_bytes=settings.max_result_bytes,
            )
            for command, spec in specs
        }
        down: list[str] = []
        async with anyio.create_task_group() as tg:
            for backend in backends.values():
                tg.start_soon(backend.run, name=f"backend {backend.name}")
            with anyio.move_on_after(settings.startup_timeout_s):
                for backend in backends.values():
                    await backend.wait_ready()
            down = [
                f"{b.name} ({b.last_error or 'not ready in time'})"
                for b in backends.values()
                if not b.ready
            ]
            if down:  # fail closed: refuse to serve without every configured backend
                tg.cancel_scope.cancel()
            else:
                audit.append(
                    {
                        "event": "start",
                        "session": settings.session.session_id,
                        "backends": {b.name: sorted(b.tools) for b in backends.values()},
                        "on_demand": sorted(b.name for b in backends.values() if b.on_demand),
                    }
                )
                yield Gate(
                    engine,
                    backends,
                    audit,
                    escalator or UnavailableEscalator(),
                    session=settings.session,
                    egress=egress,
                    timeouts=settings.timeouts,
                    max_result_bytes=settings.max_result_bytes,
                )
                tg.cancel_scope.cancel()
        if down:
            raise StartupError(f"backends did not start: {', '.join(down)}")
    finally:
        await egress.close()
        audit.close()


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this; without it a response written in two parts waits ~40 ms
    # for the client's delayed ACK (Nagle).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve(
    settings: ProxySettings,
    escalator: Escalator | None = None,
    *,
    started: Callable[[int], None] | None = None,
) -> None:
    """Run until cancelled. `started(port)` is called once the port accepts MCP requests."""
    async with running_gate(settings, escalator) as gate:
        sock = bind(settings.host, settings.port)
        port = sock.getsockname()[1]
        # Our own HTTP/1.1 server (server.py): httptools frames requests, one write a response.
        server = HttpServer(http_app(gate, settings))
        await server.start(sock)
        try:
            logger.info("mcp-proxy serving on %s:%d", settings.host, port)
            if started is not None:
                started(port)
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await server.close()  # a clean stop: connections closed, then the backends
