"""`ironcurtain mcp-proxy serve`: the policy proxy as a process (what the image runs)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the proxy's imports are heavy: load them when serving, not for every CLI call
    from ..escalation.escalator import RedisEscalator
    from ..escalation.types import Escalator
    from .service import ProxySettings


def register(commands: argparse._SubParsersAction) -> None:
    proxy = commands.add_parser("mcp-proxy", help="the MCP policy proxy")
    sub = proxy.add_subparsers(dest="mcp_proxy_command", metavar="ACTION", required=True)
    run = sub.add_parser("serve", help="serve MCP (Streamable HTTP at /mcp) under policy")
    run.add_argument("--policy", type=Path, required=True, help="policy directory")
    run.add_argument("--workspace", type=Path, required=True, help="the session workspace")
    run.add_argument("--audit", type=Path, required=True, help="the session's audit log file")
    run.add_argument(
        "--audit-key-file",
        type=Path,
        default=None,
        help="the audit chain's key (64 hex digits; `ironcurtain run` hands one over as a "
        "secret); unset: a key for this process only, which nobody can verify with",
    )
    run.add_argument(
        "--max-result-bytes",
        type=int,
        default=None,
        help="a backend's answers larger than this are refused, naming the limit (default 8 MiB)",
    )
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8080)
    run.add_argument("--state-dir", type=Path, default=Path("/var/lib/ironcurtain"))
    run.add_argument("--ca-dir", type=Path, default=Path("/ca"))
    run.add_argument("--secrets-dir", type=Path, default=Path("/run/secrets"))
    run.add_argument("--session-id", default="local")
    run.add_argument("--task", default="")
    run.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        help="accepted Host header, e.g. sidecar:8080 (repeatable; none = any)",
    )
    run.add_argument("--escalation-timeout", type=float, default=300.0)
    run.add_argument("--worktree", default="", help="shown to the approver")
    run.add_argument("--agent", default="", help="shown to the approver")
    run.add_argument(
        "--redis-url", default="", help="the escalation channel (none: escalations are denied)"
    )
    run.add_argument("--redis-password-file", type=Path, default=None)
    run.add_argument(
        "--redis-ca-file",
        type=Path,
        default=None,
        help="the team CA the Redis server must chain to",
    )
    run.add_argument(
        "--sandbox",
        default="",
        help="where command servers run: unix:DIR, the rooms' folders (server NAME's socket "
        "at DIR/NAME/NAME.sock), or `inline` (as children of the proxy: tests only); unset "
        "refuses them",
    )
    run.add_argument(
        "--sandbox-wake",
        type=Path,
        default=None,
        help="a folder: the proxy creates NAME in it to ask for server NAME's room, started on "
        "its first call (`ironcurtain run` watches it); unset: the rooms are already running",
    )
    run.add_argument(
        "--tools-cache",
        type=Path,
        default=None,
        help="saved tool listings (cache-tools): those backends start on their first call",
    )
    run.set_defaults(handler=_serve)

    box = sub.add_parser("room", help="serve one server to the proxy, in its room")
    box.add_argument(
        "--server",
        type=Path,
        required=True,
        help="the server's settings as `ironcurtain run` wrote them (session/rooms.py)",
    )
    box.add_argument("--workspace", type=Path, default=None, help="the workspace, if mounted")
    box.add_argument(
        "--sockets",
        type=Path,
        required=True,
        help="a private folder (0700, this user's) shared with the proxy: NAME.sock",
    )
    box.set_defaults(handler=_sandbox)

    save = sub.add_parser(
        "cache-tools",
        help="start each child-process backend once, save its tool listing (image build step)",
    )
    save.add_argument("--policy", type=Path, required=True, help="policy directory")
    save.add_argument("--workspace", type=Path, required=True, help="the workspace path served")
    save.add_argument("--audit", type=Path, required=True, help="the audit file path served")
    save.add_argument("--out", type=Path, required=True, help="the cache folder")
    save.set_defaults(handler=_cache_tools)


def _announce(host: str, port: int) -> None:
    # One machine-readable line, so a supervisor (or a test) that asked for port 0 learns the port.
    print(f"mcp-proxy: serving on http://{host}:{port}/mcp", flush=True)


def _escalator(args: argparse.Namespace) -> RedisEscalator | None:
    """The Redis escalation channel when configured; None leaves escalations denied (said so)."""
    if not args.redis_url:
        return None
    from ..escalation.escalator import RedisEscalator

    if args.redis_ca_file is None:
        raise ValueError("--redis-ca-file is required with --redis-url (TLS, the team CA)")
    return RedisEscalator.connect(
        args.redis_url, args.redis_password_file, ca_file=args.redis_ca_file
    )


async def _until_signalled(
    settings: ProxySettings, host: str, escalator: Escalator | None = None
) -> None:
    """Serve until SIGTERM/SIGINT, then stop cleanly: backends' children are stopped too."""
    import anyio

    from .service import serve

    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    tg.cancel_scope.cancel()

        tg.start_soon(watch)
        await serve(settings, escalator, started=lambda port: _announce(host, port))
        tg.cancel_scope.cancel()


def _serve(args: argparse.Namespace) -> int:
    import anyio

    from ..audit import AuditError
    from ..audit.key_files import KeyFileError
    from ..policy import PolicyError
    from .config import ConfigError
    from .gate import SessionInfo, Timeouts
    from .service import ProxySettings, StartupError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = ProxySettings(
        policy_dir=args.policy.resolve(),
        workspace=args.workspace.resolve(),
        audit_file=args.audit.resolve(),
        host=args.host,
        port=args.port,
        state_dir=args.state_dir,
        ca_dir=args.ca_dir,
        secrets_dir=args.secrets_dir,
        session=SessionInfo(
            session_id=args.session_id, worktree=args.worktree, agent=args.agent, task=args.task
        ),
        timeouts=Timeouts(escalation_s=args.escalation_timeout),
        allowed_hosts=tuple(args.allowed_host),
        sandbox=args.sandbox,
        sandbox_wake=args.sandbox_wake,
        tools_cache=args.tools_cache,
        audit_key_file=args.audit_key_file,
        **({"max_result_bytes": args.max_result_bytes} if args.max_result_bytes else {}),
    )
    try:
        escalator = _escalator(args)
    except OSError as exc:  # ssl.SSLError too: a CA file that is no certificate
        print(
            f"mcp-proxy: refusing to start: the Redis credential or CA file: {exc}",
            file=sys.stderr,
        )
        return 2
    except ValueError as exc:
        print(f"mcp-proxy: refusing to start: --redis-url: {exc}", file=sys.stderr)
        return 2
    try:
        anyio.run(_until_signalled, settings, args.host, escalator)
    except (PolicyError, ConfigError, StartupError, AuditError, KeyFileError) as exc:
        print(f"mcp-proxy: refusing to start: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        if escalator is not None:
            escalator.close()
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    import asyncio

    from .config import ConfigError
    from .rooms import read_spec
    from .sandbox import serve_sandbox

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    workspace = str(args.workspace.resolve()) if args.workspace is not None else None

    async def until_signalled() -> None:
        # SIGTERM (compose down) ends serving cleanly: children stopped, sockets removed.
        main = asyncio.current_task()
        assert main is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, main.cancel)
        try:
            await serve_sandbox(
                [spec],
                args.sockets,
                workspace=workspace,
                started=lambda paths: print(f"room: serving {paths}", flush=True),
            )
        except asyncio.CancelledError:
            return

    try:
        spec = read_spec(args.server)
        asyncio.run(until_signalled())
    except (ConfigError, ValueError, OSError) as exc:
        print(f"mcp-proxy room: refusing to start: {exc}", file=sys.stderr)
        return 2
    return 0


def _cache_tools(args: argparse.Namespace) -> int:
    """The listings `serve --tools-cache` reads, made with the paths `serve` will be given."""
    import anyio

    from .backend import Backend
    from .cache import ToolCache
    from .config import ConfigError, load_backends
    from .service import ProxySettings

    settings = ProxySettings(
        policy_dir=args.policy.resolve(),
        workspace=args.workspace.resolve(),
        audit_file=args.audit.resolve(),
    )
    try:
        specs = load_backends(settings.policy_dir / settings.servers_file, settings.variables())
    except ConfigError as exc:
        print(f"mcp-proxy: cache-tools: {exc}", file=sys.stderr)
        return 2
    saved = ToolCache(args.out)

    async def one(backend: Backend) -> str:
        async with anyio.create_task_group() as tg:
            tg.start_soon(backend.run)
            with anyio.move_on_after(settings.startup_timeout_s):
                await backend.wait_ready()
            tg.cancel_scope.cancel()
        if not backend.tools or backend.starts == 0:
            return f"{backend.name}: did not start ({backend.last_error or 'no answer'})"
        path = saved.put(backend.spec, list(backend.tools.values()))
        return f"{backend.name}: {len(backend.tools)} tools -> {path}"

    failed = False
    for spec in specs:
        if spec.command is None:
            print(f"mcp-proxy: cache-tools: {spec.name}: remote, not cached")
            continue
        line = anyio.run(one, Backend(spec))
        failed = failed or "did not start" in line
        print(f"mcp-proxy: cache-tools: {line}", file=sys.stderr if failed else sys.stdout)
    return 1 if failed else 0
