"""Parse the socket proxy's environment into typed settings; refuse anything unclear.

The switch names and defaults are Tecnativa's docker-socket-proxy's, so a compose file written for
it keeps its meaning. Switches for sections we never serve (they hand out file contents, secrets,
write access or every container's config) make the proxy refuse to start instead of being ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# Sections this proxy can serve, and their defaults (Tecnativa's).
SERVED = {
    "PING": True,
    "VERSION": True,
    "EVENTS": True,
    "INFO": False,
    "CONTAINERS": False,
    "IMAGES": False,
    "NETWORKS": False,
    "VOLUMES": False,
    "POST": False,
    "ALLOW_START": False,
    "ALLOW_STOP": False,
    "ALLOW_RESTARTS": False,
}

# Sections never served, and why: setting one of them to 1 is a configuration error.
NEVER = {
    "AUTH": "registry credentials",
    "BUILD": "builds run arbitrary code on the engine",
    "COMMIT": "commit snapshots a container's files into an image",
    "CONFIGS": "swarm configs carry their data",
    "DISTRIBUTION": "registry access",
    "EXEC": "exec runs commands inside containers",
    "GRPC": "BuildKit's gRPC endpoint",
    "NODES": "swarm administration",
    "PLUGINS": "plugins run privileged code",
    "SECRETS": "swarm secrets",
    "SERVICES": "service specs carry every environment variable",
    "SESSION": "BuildKit sessions",
    "SWARM": "swarm administration and join tokens",
    "SYSTEM": "/system/df lists every container, image and volume",
    "TASKS": "task specs carry every environment variable",
}

DEFAULT_SOCKET = "/var/run/docker.sock"
DEFAULT_PORT = 2375
DEFAULT_BIND = "0.0.0.0"  # noqa: S104 - standalone, as Tecnativa's: its own container network
# An IPv4 address, written into haproxy.cfg: dotted decimal and nothing else.
_BIND = re.compile(
    r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"
)
# Docker's own rule for container names.
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{1,127}")
# Docker resolves /containers/{x} by full ID, then name, then ID prefix: a hex-only name that is
# not a running container would fall through to some other container's ID prefix.
_HEX = re.compile(r"[0-9a-fA-F]+")
# Written unquoted into haproxy.cfg: no spaces, quotes, '#', '$' or backslashes can reach it.
_SOCKET_PATH = re.compile(r"/[A-Za-z0-9/._-]+")


class SettingsError(ValueError):
    """The environment asks for something the proxy will not do; it refuses to start."""


@dataclass(frozen=True, slots=True)
class Settings:
    switches: frozenset[str]  # the served sections that are on
    visible: tuple[str, ...]  # container names whose inspect/logs/top/stats are served
    socket_path: str = DEFAULT_SOCKET
    port: int = DEFAULT_PORT
    bind: str = DEFAULT_BIND  # 127.0.0.1 when it shares the sidecar's network namespace

    def on(self, switch: str) -> bool:
        if switch not in SERVED:
            raise KeyError(switch)
        return switch in self.switches


def _flag(name: str, raw: str) -> bool:
    value = raw.strip()
    if value in ("0", ""):
        return False
    if value == "1":
        return True
    raise SettingsError(f"{name}={raw!r}: a switch is 0 or 1")


def visible_names(raw: str) -> tuple[str, ...]:
    """VISIBLE_CONTAINERS: comma-separated container names (never IDs), in order, deduplicated."""
    names: list[str] = []
    for part in raw.split(","):
        name = part.strip()
        if not name:
            continue
        if not _NAME.fullmatch(name):
            raise SettingsError(f"VISIBLE_CONTAINERS: {name!r} is not a container name")
        if _HEX.fullmatch(name):
            raise SettingsError(
                f"VISIBLE_CONTAINERS: {name!r} looks like a container ID (hex only); "
                "only names are accepted, since an absent name would match another ID's prefix"
            )
        if name not in names:
            names.append(name)
    return tuple(names)


def from_environ(environ: Mapping[str, str]) -> Settings:
    on = {
        name
        for name, default in SERVED.items()
        if _flag(name, environ.get(name, str(int(default))))
    }
    refused = sorted(name for name in NEVER if _flag(name, environ.get(name, "0")))
    if refused:
        reasons = "; ".join(f"{name} ({NEVER[name]})" for name in refused)
        raise SettingsError(f"this proxy never serves these sections, refusing to start: {reasons}")
    socket_path = environ.get("SOCKET_PATH", DEFAULT_SOCKET).strip() or DEFAULT_SOCKET
    if not _SOCKET_PATH.fullmatch(socket_path) or "/." in socket_path:
        raise SettingsError(f"SOCKET_PATH={socket_path!r}: an absolute path of [A-Za-z0-9/._-]")
    raw_port = environ.get("SOCKETPROXY_PORT", str(DEFAULT_PORT)).strip()
    if not re.fullmatch(r"[0-9]{1,5}", raw_port) or not 0 < int(raw_port) < 65536:
        raise SettingsError(f"SOCKETPROXY_PORT={raw_port!r}: a TCP port number")
    bind = environ.get("SOCKETPROXY_BIND", DEFAULT_BIND).strip()
    if not _BIND.fullmatch(bind):
        raise SettingsError(f"SOCKETPROXY_BIND={bind!r}: an IPv4 address (e.g. 127.0.0.1)")
    return Settings(
        switches=frozenset(on),
        visible=visible_names(environ.get("VISIBLE_CONTAINERS", "")),
        socket_path=socket_path,
        port=int(raw_port),
        bind=bind,
    )
