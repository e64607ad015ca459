"""The backends file (`policy/servers.yaml`): which MCP servers the proxy starts or reaches.

Claude-style: `mcpServers: {NAME: {command, args, env}}` for a child process, or `{url}` for a
remote Streamable HTTP server. `egress: true` routes the child's HTTP(S) through the checking
egress proxy. `${name}` is filled from the variables the caller passes.

Every command server is third-party code: in a session it runs in a room of its own (a container
per server, mcpproxy/sandbox.py), never in the proxy's container. `room:` says what the room holds:
`workspace: rw | ro | none` (default none) and `network: none | egress` (default none; egress, the
same as `egress: true`, is the checking egress leg and nothing else). The proxy reaches each room
through a unix socket in the room's own folder. `sandbox: true` (older files) means
`room: {workspace: rw}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

_VAR = re.compile(r"\$\{([a-z_]+)\}")


class ConfigError(ValueError):
    pass


WORKSPACE_ACCESS = ("none", "ro", "rw")
NETWORKS = ("none", "egress")


@dataclass(frozen=True, slots=True)
class Room:
    """What a server's room holds: the workspace (or not, or read-only), and which network."""

    workspace: str = "none"  # one of WORKSPACE_ACCESS
    network: str = "none"  # one of NETWORKS: egress is the checking leg, through a socket


@dataclass(frozen=True, slots=True)
class BackendSpec:
    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    url: str | None = None
    egress: bool = False  # give the child HTTP(S)_PROXY pointing at the egress checker
    room: Room | None = None  # a command server's room; None: inline only (tests) or remote
    # (the path of its unix socket in the sandbox,): SocketClient's arguments, as a tuple
    address: tuple[str] | None = None

    @property
    def sandbox(self) -> bool:
        """Runs in a room of its own in a session (every command server read from a file)."""
        return self.room is not None

    def reached_at(self, path: str) -> BackendSpec:
        """This server as the proxy sees it when it runs in its room behind socket `path`."""
        return BackendSpec(name=self.name, address=(path,), egress=self.egress)


def load_backends(path: Path, variables: Mapping[str, str]) -> tuple[BackendSpec, ...]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the backends file: {exc}") from None
    return parse_backends(doc, str(path), variables)


def parse_backends(doc: object, file: str, variables: Mapping[str, str]) -> tuple[BackendSpec, ...]:
    def sub(text: object, where: str) -> str:
        if not isinstance(text, str):
            raise ConfigError(f"{file}: {where} must be a string")

        def one(match: re.Match[str]) -> str:
            if match.group(1) not in variables:
                raise ConfigError(f"{file}: {where}: unknown variable ${{{match.group(1)}}}")
            return variables[match.group(1)]

        return _VAR.sub(one, text)

    if not isinstance(doc, dict) or not isinstance(doc.get("mcpServers"), dict):
        raise ConfigError(f"{file}: expected a mapping with an `mcpServers` mapping")
    specs = []
    for name, body in doc["mcpServers"].items():
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9-]*", name):
            raise ConfigError(f"{file}: server name {name!r} must match [a-z][a-z0-9-]*")
        if not isinstance(body, dict):
            raise ConfigError(f"{file}: server {name!r} must be a mapping")
        unknown = set(body) - {"command", "args", "env", "url", "egress", "sandbox", "room", "type"}
        if unknown:
            raise ConfigError(f"{file}: server {name!r}: unknown keys {sorted(unknown)}")
        if ("command" in body) == ("url" in body):
            raise ConfigError(f"{file}: server {name!r} needs exactly one of command or url")
        args = body.get("args", [])
        env = body.get("env", {})
        if not isinstance(args, list) or not isinstance(env, dict):
            raise ConfigError(f"{file}: server {name!r}: args must be a list, env a mapping")
        egress = body.get("egress", False)
        sandbox = body.get("sandbox", False)
        if not isinstance(egress, bool) or not isinstance(sandbox, bool):
            raise ConfigError(f"{file}: server {name!r}: egress and sandbox must be true or false")
        room = _room(body, sandbox, egress, f"{file}: server {name!r}")
        specs.append(
            BackendSpec(
                name=name,
                command=sub(body["command"], f"{name}.command") if "command" in body else None,
                args=tuple(sub(a, f"{name}.args") for a in args),
                env={str(k): sub(v, f"{name}.env.{k}") for k, v in env.items()},
                url=sub(body["url"], f"{name}.url") if "url" in body else None,
                egress=(room is not None and room.network == "egress") or egress,
                room=room,
            )
        )
    return tuple(specs)


def _room(body: dict[str, object], sandbox: bool, egress: bool, where: str) -> Room | None:
    if "command" not in body:
        if sandbox or "room" in body:
            raise ConfigError(f"{where}: a room runs a command; a url server has none")
        return None
    given = body.get("room", {})
    if not isinstance(given, dict) or set(given) - {"workspace", "network"}:
        raise ConfigError(f"{where}: room must be a mapping of workspace and network")
    workspace = given.get("workspace", "rw" if sandbox else "none")
    network = given.get("network", "egress" if egress else "none")
    if workspace not in WORKSPACE_ACCESS:
        raise ConfigError(f"{where}: room.workspace must be one of {', '.join(WORKSPACE_ACCESS)}")
    if network not in NETWORKS:
        raise ConfigError(f"{where}: room.network must be one of {', '.join(NETWORKS)}")
    if egress and network != "egress":
        raise ConfigError(f"{where}: egress: true needs room.network egress")
    return Room(workspace=str(workspace), network=str(network))


INLINE = "inline"  # run sandboxed servers as the proxy's own children (tests, benchmarks)
UNIX = "unix:"  # `unix:DIR`: the rooms' folders, DIR/NAME/ for server NAME (see room_folder)
EGRESS_SOCKET = "_egress.sock"  # the egress leg in a room's folder ("_": no server's own socket)
_SOCKET_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")
MAX_SOCKET_PATH = 107  # bytes: sun_path holds 108 with the terminating NUL


def socket_path(folder: str, name: str) -> str:
    """A sandboxed server's socket, `<folder>/<name>.sock`: the proxy and the sandbox read the
    same servers.yaml, so they agree without being told. The name is checked again here (a spec
    need not come from the file): a name never leaves the folder or hides in it."""
    if not _SOCKET_NAME.fullmatch(name):
        raise ConfigError(f"server name {name!r} cannot name a socket: [a-z][a-z0-9-]{{0,62}}")
    if not folder.startswith("/") or "\0" in folder:
        raise ConfigError(f"the sandbox folder {folder!r} must be an absolute path")
    path = f"{folder.rstrip('/')}/{name}.sock"
    if len(path.encode()) > MAX_SOCKET_PATH:
        raise ConfigError(f"the socket path {path!r} is longer than {MAX_SOCKET_PATH} bytes")
    return path


def room_folder(folder: str, name: str) -> str:
    """Server `name`'s own folder under the rooms' folder: its socket, and its egress leg."""
    socket_path(folder, name)  # the name checked, the folder too
    return f"{folder.rstrip('/')}/{name}"


def room_socket(folder: str, name: str) -> str:
    """Server `name`'s socket as the proxy sees it: DIR/NAME/NAME.sock."""
    return socket_path(room_folder(folder, name), name)


def egress_socket(folder: str, name: str) -> str:
    """Where the proxy serves server `name`'s egress leg: DIR/NAME/_egress.sock."""
    path = f"{room_folder(folder, name)}/{EGRESS_SOCKET}"
    if len(path.encode()) > MAX_SOCKET_PATH:
        raise ConfigError(f"the socket path {path!r} is longer than {MAX_SOCKET_PATH} bytes")
    return path


def place(specs: tuple[BackendSpec, ...], sandbox: str) -> tuple[BackendSpec, ...]:
    """Where each server runs: `sandbox` is `unix:DIR` (the rooms' folder: server NAME at
    DIR/NAME/NAME.sock), INLINE, or "" (none).

    With no rooms a server that needs one is refused rather than run beside the proxy's secrets
    and audit log.
    """
    if sandbox == INLINE:
        return specs
    if not sandbox:
        boxed = [s.name for s in specs if s.sandbox]
        if boxed:
            raise ConfigError(
                f"server(s) {', '.join(boxed)} are third-party code and run in rooms of their "
                "own (sandbox containers): pass --sandbox unix:DIR (a session does), or "
                "--sandbox inline where no agent writes the workspace (tests)"
            )
        return specs
    if not sandbox.startswith(UNIX):
        raise ConfigError(f"sandbox {sandbox!r} must be unix:DIR (the rooms' socket folder)")
    folder = sandbox.removeprefix(UNIX)
    return tuple(s.reached_at(room_socket(folder, s.name)) if s.sandbox else s for s in specs)
