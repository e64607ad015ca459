"""A room's settings as a file: the one server it runs, read without the policy folder.

A room mounts no policy (the filesystem server's room holds the workspace alone), so `ironcurtain
run` writes each room's server, its variables already filled in for the room's own view
(`${workspace}` is `/workspace`, every other folder of the proxy's names nothing), into a small
JSON file mounted read-only into that room and no other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from .config import BackendSpec, ConfigError, Room, parse_backends

ROOM_WORKSPACE = "/workspace"
# The proxy's own folders do not exist in a room, whatever a server's arguments name.
ABSENT = "/nonexistent"


def room_variables(workspace: str = ROOM_WORKSPACE) -> dict[str, str]:
    variables = dict.fromkeys(
        ("policy_dir", "audit_dir", "state_dir", "ca_dir", "secrets_dir"), ABSENT
    )
    variables["workspace"] = workspace
    return variables


def room_specs(doc: object, file: str) -> tuple[BackendSpec, ...]:
    """The servers of a backends file that run in rooms, as their rooms see them."""
    return tuple(s for s in parse_backends(doc, file, room_variables()) if s.sandbox)


def dump_spec(spec: BackendSpec) -> str:
    assert spec.room is not None
    assert spec.command is not None
    return json.dumps(
        {
            "name": spec.name,
            "command": spec.command,
            "args": list(spec.args),
            "env": dict(spec.env),
            "room": {"workspace": spec.room.workspace, "network": spec.room.network},
        },
        indent=2,
    )


def read_spec(path: Path) -> BackendSpec:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the room's server: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("room"), Mapping):
        raise ConfigError(f"{path}: expected a server with a room")
    name = doc.get("name")
    body = {k: doc[k] for k in ("command", "args", "env", "room") if k in doc}
    (spec,) = parse_backends({"mcpServers": {name: body}}, str(path), {})
    assert spec.room is not None
    return spec


__all__ = ["ROOM_WORKSPACE", "Room", "dump_spec", "read_spec", "room_specs", "room_variables"]
