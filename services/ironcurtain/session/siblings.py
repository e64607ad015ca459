"""Sibling services: a team's own containers (databases, caches on a shared `dev` network) that
a session's agent may reach, declared in a file outside the workspace. Pure: parse and refuse,
and the compose override that wires them; `run.py` checks the networks exist.

    siblings:
      - name: db            # the agent connects to db:PORT (an alias of the siblings sidecar)
        network: dev        # an existing Docker network the siblings sidecar joins
        host: team-postgres # the service's name on that network
        port: 5432
        listen: 5432        # optional: the port the agent uses (default: port; 1024-65535)
        docker_visible: yes # optional: `host` is a container name served through the socket
                            # proxy (inspect without environment, logs); default: no

The agent never joins those networks. A second socat container (`siblings`, the sidecar image
with the sidecar's hardening) joins the agent network and the declared networks and forwards
exactly the declared ports; the doors' sidecar never joins a team network, so nothing on it can
reach the doors. See docs/session.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from .forwards import Forward, ForwardError, render
from .hardening import sidecar_compose_service

_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
_NETWORK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_KEYS = {"name", "network", "host", "port", "listen", "docker_visible"}
_REQUIRED = ("name", "network", "host", "port")
# Names the session already uses on its networks: a sibling may not shadow them.
RESERVED = frozenset(
    {"agent", "sidecar", "siblings", "mcp-proxy", "mitm-proxy", "socket-proxy", "localhost"}
)
SERVICE = "siblings"


class SiblingError(ValueError):
    """A declaration `ironcurtain run` refuses (the message says which entry and why)."""


@dataclass(frozen=True, slots=True)
class Sibling:
    name: str
    network: str
    host: str
    port: int
    listen: int
    docker_visible: bool = False

    @property
    def forward(self) -> Forward:
        return Forward(self.listen, self.host, self.port)


def load(path: Path, door_ports: Iterable[int]) -> tuple[Sibling, ...]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SiblingError(f"{path}: cannot read the sibling services: {exc}") from None
    return parse(doc, str(path), door_ports)


def parse(doc: object, where: str, door_ports: Iterable[int]) -> tuple[Sibling, ...]:
    if not isinstance(doc, Mapping) or set(doc) != {"siblings"}:
        raise SiblingError(f"{where}: expected exactly one key, `siblings`, a list")
    entries = doc["siblings"]
    if not isinstance(entries, list):
        raise SiblingError(f"{where}: `siblings` must be a list")
    doors = set(door_ports)
    found: list[Sibling] = []
    for i, entry in enumerate(entries):
        sibling = _one(entry, f"{where}: siblings[{i}]")
        label = f"{where}: sibling {sibling.name!r}"
        if sibling.listen in doors:
            raise SiblingError(
                f"{label}: port {sibling.listen} is a door's port ({sorted(doors)}); "
                "set `listen` to another port"
            )
        for other in found:
            if other.name == sibling.name:
                raise SiblingError(f"{label} is declared twice")
            if other.listen == sibling.listen:
                raise SiblingError(
                    f"{label}: port {sibling.listen} is taken by {other.name!r}; set `listen`"
                )
        found.append(sibling)
    return tuple(found)


def _one(entry: object, where: str) -> Sibling:
    if not isinstance(entry, Mapping):
        raise SiblingError(f"{where}: each sibling is a mapping")
    unknown = sorted(str(k) for k in set(entry) - _KEYS)
    if unknown:
        raise SiblingError(f"{where}: unknown keys {unknown} (known: {sorted(_KEYS)})")
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise SiblingError(f"{where}: missing {missing}")
    name, network, host = entry["name"], entry["network"], entry["host"]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SiblingError(f"{where}: name {name!r} must be plain: [a-z][a-z0-9-]*, <= 31 chars")
    where = f"{where} ({name})"
    if name in RESERVED:
        raise SiblingError(f"{where}: the name {name!r} is the session's own")
    if not isinstance(network, str) or not _NETWORK.fullmatch(network):
        raise SiblingError(f"{where}: network {network!r} is not a Docker network name")
    if not isinstance(host, str) or host in RESERVED:
        raise SiblingError(f"{where}: host {host!r} is not a sibling's name")
    port, listen = entry["port"], entry.get("listen", entry["port"])
    for key, value in (("port", port), ("listen", listen)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise SiblingError(f"{where}: {key} must be a number, not {value!r}")
    visible = entry.get("docker_visible", False)
    if not isinstance(visible, bool):
        raise SiblingError(f"{where}: docker_visible must be yes or no")
    try:
        Forward(listen, host, port)
    except ForwardError as exc:
        raise SiblingError(f"{where}: {exc}") from None
    return Sibling(name, network, host, port, listen, visible)


def networks(siblings: Iterable[Sibling]) -> dict[str, str]:
    """Docker network name -> the key the override gives it (`sibling-0`, ...), in order."""
    keys: dict[str, str] = {}
    for sibling in siblings:
        keys.setdefault(sibling.network, f"sibling-{len(keys)}")
    return keys


def visible(siblings: Iterable[Sibling]) -> tuple[str, ...]:
    """The container names the socket proxy serves (docker_visible siblings only)."""
    return tuple(dict.fromkeys(s.host for s in siblings if s.docker_visible))


def compose_override(siblings: tuple[Sibling, ...]) -> dict[str, object]:
    """The `siblings` service (a second sidecar) and the external networks it joins."""
    keys = networks(siblings)
    service: dict[str, object] = {
        "image": "ironcurtain/sidecar:${IRONCURTAIN_IMAGE_TAG}",
        "labels": {
            "org.ironcurtain.part": "session",
            "org.ironcurtain.session": "${IRONCURTAIN_SESSION_ID}",
            "org.ironcurtain.test-run": "${IRONCURTAIN_TEST_RUN:-}",
        },
        "logging": {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}},
        "environment": {"FORWARDS": render(s.forward for s in siblings)},
        **sidecar_compose_service(),
        "networks": {
            "agent": {"aliases": [s.name for s in siblings]},
            **{key: {} for key in keys.values()},
        },
        "healthcheck": {
            "test": ["CMD", "/usr/local/bin/ironcurtain-sidecar", "health"],
            "interval": "30s",
            "timeout": "5s",
            "retries": 3,
        },
    }
    return {
        "services": {SERVICE: service},
        "networks": {key: {"external": True, "name": name} for name, key in keys.items()},
    }
