"""The backends file (`policy/servers.yaml`): which MCP servers the proxy starts or reaches.

Claude-style: `mcpServers: {NAME: {command, args, env}}` for a child process, or `{url}` for a
remote Streamable HTTP server. `egress: true` routes the child's HTTP(S) through the checking
egress proxy. `sandbox: true` marks a server that may run programs the agent wrote (git runs
filter drivers and textconv commands from the repository's own config): in a session it runs in
the sandbox container, which holds nothing but the workspace and has no network: the proxy
reaches each such server through a unix socket named after it (see mcpproxy/sandbox.py).
`${name}` is filled from the variables the caller passes.
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


@dataclass(frozen=True, slots=True)
class BackendSpec:
    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    url: str | None = None
    egress: bool = False  # give the child HTTP(S)_PROXY pointing at the egress checker
    sandbox: bool = False  # runs agent-written programs: never inside the proxy's container
    # (the path of its unix socket in the sandbox,): SocketClient's arguments, as a tuple
    address: tuple[str] | None = None

    def reached_at(self, path: str) -> BackendSpec:
        """This server as the proxy sees it when it runs in the sandbox behind socket `path`."""
        return BackendSpec(name=self.name, address=(path,))


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
        unknown = set(body) - {"command", "args", "env", "url", "egress", "sandbox", "type"}
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
        if sandbox and ("command" not in body or egress):
            # The sandbox has no network: only a local child without egress can run there.
            raise ConfigError(f"{file}: server {name!r}: sandbox needs a command and no egress")
        specs.append(
            BackendSpec(
                name=name,
                command=sub(body["command"], f"{name}.command") if "command" in body else None,
                args=tuple(sub(a, f"{name}.args") for a in args),
                env={str(k): sub(v, f"{name}.env.{k}") for k, v in env.items()},
                url=sub(body["url"], f"{name}.url") if "url" in body else None,
                egress=egress,
                sandbox=sandbox,
            )
        )
    return tuple(specs)


INLINE = "inline"  # run sandboxed servers as the proxy's own children (tests, benchmarks)
UNIX = "unix:"  # `unix:DIR`: the folder the sandbox's sockets are in, shared by both containers
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


def place(specs: tuple[BackendSpec, ...], sandbox: str) -> tuple[BackendSpec, ...]:
    """Where each server runs: `sandbox` is `unix:DIR` (the folder of the sandbox's sockets),
    INLINE, or "" (none).

    With no sandbox a server marked `sandbox: true` is refused rather than run beside the
    proxy's secrets and audit log.
    """
    if sandbox == INLINE:
        return specs
    if not sandbox:
        boxed = [s.name for s in specs if s.sandbox]
        if boxed:
            raise ConfigError(
                f"server(s) {', '.join(boxed)} run programs the agent can write and need the "
                "sandbox container: pass --sandbox unix:DIR (a session does), or --sandbox "
                "inline where no agent writes the workspace (tests)"
            )
        return specs
    if not sandbox.startswith(UNIX):
        raise ConfigError(f"sandbox {sandbox!r} must be unix:DIR (the sandbox's socket folder)")
    folder = sandbox.removeprefix(UNIX)
    return tuple(s.reached_at(socket_path(folder, s.name)) if s.sandbox else s for s in specs)
