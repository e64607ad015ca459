"""A room: one third-party MCP server in a container of its own, behind a unix socket.

Every command server is third-party code (the npm filesystem server, mcp-server-fetch, git, and
whatever a team adds), and git even runs programs the agent wrote (filter drivers in
`.git/config`). Run beside the policy proxy, such code would hold the proxy's Redis password (to
approve its own escalations), its audit log, the policy and the wake folder. So a session runs
each in a room (`mcp-room-NAME`, session/rooms.py) holding only what it serves: the workspace if
its `room:` says so, no secret, no audit log, no policy, and no network at all (`network_mode:
none`: loopback only). A room with `network: egress` gets the checking egress leg and nothing
more: an HTTP proxy port on its loopback whose every connection is relayed to a unix socket the
MCP proxy serves (`_egress.sock` in the room's folder), where egress.py checks it as before. The
proxy reaches the room through the room's own folder (0700, the MCP uid's; never the agent's).

Inside the room the child runs under Landlock (landlock.py): whatever path a server resolves,
the kernel lets it open only the workspace (and its program's folders), so a symlink swapped in
between the server's check and its open reaches nothing else.

This process understands no MCP and checks no policy (the proxy has decided before a line
arrives; this process is as untrusted as what it runs): each sandboxed server gets a socket
`<folder>/<name>.sock` (`socket_path`), and each connection to it gets a fresh child whose
stdin/stdout are the connection's two directions. The proxy speaks its stdio session over that
connection (stdio.py SocketClient); closing it stops the child's whole process group, and a
child that exits closes it. It imports nothing heavy, so the container costs little at session
start.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import stat
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

from . import landlock
from .childenv import inherited
from .config import EGRESS_SOCKET, BackendSpec, socket_path

logger = logging.getLogger(__name__)

CHUNK = 65536
GRACE_S = 2.0  # for a child to exit after its stdin closes, and again after SIGTERM
MAX_PIPES = 4  # children per server at once: the proxy needs one, restarts briefly two


class LandlockRefused(ValueError):
    """Confinement was asked for and the kernel has no Landlock: the room does not serve."""


def child_environment(spec: BackendSpec, environ: Mapping[str, str]) -> dict[str, str]:
    """A short list of ordinary variables, then the server's own settings over them."""
    return {**inherited(environ), **spec.env}


def proxy_environment(port: int) -> dict[str, str]:
    """The child's way out: the room's relay to the checking egress leg, nothing else."""
    url = f"http://127.0.0.1:{port}"
    names = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
    return dict.fromkeys(names, url) | {"NO_PROXY": "", "no_proxy": ""}


class Pipe:
    """One sandboxed server on one socket: a fresh child for each connection."""

    def __init__(
        self,
        spec: BackendSpec,
        environ: Mapping[str, str],
        rules: landlock.Rules | None = None,
        egress_port: int | None = None,
    ) -> None:
        assert spec.command is not None
        self.spec = spec
        self.env = child_environment(spec, environ)
        if egress_port is not None:
            self.env |= proxy_environment(egress_port)
        self.rules = rules
        self._confine = None if rules is None else functools.partial(landlock.restrict, rules)
        self.open = 0
        self.tasks: set[asyncio.Task[None]] = set()  # connections being served, for shutdown

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.open >= MAX_PIPES:
            logger.warning("%s: %d pipes open; refusing another", self.spec.name, self.open)
            writer.close()
            return
        self.open += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self._serve(reader, writer)
        except Exception:  # one connection's failure must not stop the server
            logger.exception("%s: pipe failed", self.spec.name)
        finally:
            self.tasks.discard(task)
            self.open -= 1
            writer.close()

    async def close(self) -> None:
        """Every connection ended, every child stopped."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self.spec.command is not None
        child = await asyncio.create_subprocess_exec(
            self.spec.command,
            *self.spec.args,
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=None,  # the container's log
            start_new_session=True,  # its own group: the stop reaches its children too
            # Applied in the child before its program runs: binds it and all it starts.
            preexec_fn=None
            if self.rules is None
            else functools.partial(landlock.restrict, self.rules),
        )
        assert child.stdin is not None
        assert child.stdout is not None
        logger.info("%s: child %d started", self.spec.name, child.pid)
        up = asyncio.create_task(_copy_in(reader, child.stdin))
        down = asyncio.create_task(_copy_out(child.stdout, writer))
        try:
            await asyncio.wait((up, down), return_when=asyncio.FIRST_COMPLETED)
        finally:
            up.cancel()
            down.cancel()
            await _uncancellable(_stop(child))
            logger.info("%s: child %d stopped (%s)", self.spec.name, child.pid, child.returncode)


async def _copy_in(reader: asyncio.StreamReader, stdin: asyncio.StreamWriter) -> None:
    while data := await reader.read(CHUNK):
        stdin.write(data)
        await stdin.drain()
    stdin.close()  # the proxy hung up: end of input, as a closed pipe would say


async def _copy_out(stdout: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await stdout.read(CHUNK):
        writer.write(data)
        await writer.drain()


async def _half(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """One direction of a relayed connection; its end is passed on as end of input."""
    await _copy_out(src, dst)
    if dst.can_write_eof():
        dst.write_eof()


async def _uncancellable(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` to its end even if this task is cancelled meanwhile (then re-raise that)."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


async def _stop(child: asyncio.subprocess.Process) -> None:
    """stdin closed, a grace period, then the whole group terminated, then killed."""
    if child.stdin is not None and not child.stdin.is_closing():
        child.stdin.close()
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, sig)
        try:
            await asyncio.wait_for(child.wait(), GRACE_S)
            break
        except TimeoutError:
            continue
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)  # what the server left behind in its group


def check_folder(folder: Path) -> None:
    """The socket folder is ours alone: a folder others may enter would offer the servers to
    them (connecting needs only the socket's path and write permission on it)."""
    info = folder.lstat()  # the folder itself, never where a symlink leads
    if not stat.S_ISDIR(info.st_mode):
        raise ValueError(f"the socket folder {folder} is not a folder")
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise ValueError(
            f"the socket folder {folder} must be private to this user (owner uid "
            f"{info.st_uid}, mode {info.st_mode & 0o777:o}; expected uid {os.geteuid()}, 700)"
        )


def child_rules(spec: BackendSpec, workspace: str | None) -> landlock.Rules:
    """What the kernel lets this server's child open: the workspace as its room holds it."""
    assert spec.room is not None
    if spec.room.workspace == "none" or workspace is None:
        return landlock.room_rules(None, writable=False)
    return landlock.room_rules(workspace, writable=spec.room.workspace == "rw")


async def _relay(folder: Path) -> asyncio.Server:
    """The room's egress port on loopback: each connection relayed to the proxy's checking
    leg at `folder`/_egress.sock (the room has no other network to reach anything through)."""
    leg = str(folder / EGRESS_SOCKET)

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(leg)
        except OSError as exc:
            logger.warning("egress leg %s does not answer: %s", leg, exc)
            writer.close()
            return
        try:
            await asyncio.gather(
                _half(reader, up_writer), _half(up_reader, writer), return_exceptions=True
            )
        finally:
            up_writer.close()
            writer.close()

    return await asyncio.start_server(one, "127.0.0.1", 0)


async def serve_sandbox(
    specs: Sequence[BackendSpec],
    folder: Path,
    *,
    workspace: str | None = None,
    confine: bool = True,
    environ: Mapping[str, str] | None = None,
    started: Callable[[dict[str, str]], None] | None = None,
) -> None:
    """Serve every server that needs a room on its socket in `folder` until cancelled (a
    session's room serves one); the sockets are removed again when it ends. With `confine`,
    each child runs under Landlock, and a kernel without it is refused (LandlockRefused)."""
    boxed = [spec for spec in specs if spec.sandbox]
    if not boxed:
        raise ValueError("no server to serve: none runs a command in a room")
    check_folder(folder)
    paths = {spec.name: socket_path(str(folder), spec.name) for spec in boxed}
    env = dict(os.environ if environ is None else environ)
    if confine:
        # Fail closed: a child that is not confined could open whatever its server resolves
        # (the symlink-swap race). gVisor's runsc has no Landlock, so rooms run under runc.
        try:
            logger.info("Landlock ABI %d: children confined to their rooms", landlock.abi())
        except landlock.LandlockUnavailable:
            raise LandlockRefused(
                "this kernel offers no Landlock (gVisor's runsc has none), so the children "
                f"of {', '.join(s.name for s in boxed)} cannot be confined to the room: "
                "refusing to serve (run rooms under runc; docs/isolation.md, 'gVisor')"
            ) from None
    servers: list[asyncio.Server] = []
    pipes: list[Pipe] = []
    try:
        for spec in boxed:
            port = None
            if spec.egress:
                servers.append(await _relay(folder))
                port = servers[-1].sockets[0].getsockname()[1]
            rules = child_rules(spec, workspace) if confine else None
            pipes.append(Pipe(spec, env, rules, port))
            # A stale socket of an earlier run at the path is replaced (asyncio unlinks it).
            servers.append(await asyncio.start_unix_server(pipes[-1], paths[spec.name]))
            os.chmod(paths[spec.name], 0o600)  # the folder guards it already; this too
        logger.info("sandbox serving %s", paths)
        if started is not None:
            started(paths)
        await asyncio.Event().wait()  # until cancelled
    finally:
        for server in servers:
            server.close()
        for path in paths.values():
            with contextlib.suppress(OSError):
                os.unlink(path)  # nothing of the session's left in the folder
        with anyio.CancelScope(shield=True):  # a cancelled caller still gets its children stopped
            for pipe in pipes:
                await pipe.close()
