"""The rooms of a session: one container per third-party MCP server (compose override, pure).

compose.yaml is static; the servers are the team's (`policy/servers.yaml`), so `ironcurtain run`
writes a small override with one service `mcp-room-NAME` per command server, each holding only
what its `room:` names: the workspace (rw, ro, or not at all), the room's own socket folder, its
server's settings file, and no network (`network_mode: none`; a room with `network: egress`
reaches the checking egress leg through a socket in its folder). No policy, no audit, no secret,
no wake folder. None of them starts with the session: `ironcurtain run` starts a room when the
proxy first asks for it (a file NAME in wake/). Hardening as every container of ours: a unit
test checks it against the agent's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..mcpproxy.config import BackendSpec
from ..mcpproxy.rooms import ROOM_WORKSPACE

PREFIX = "mcp-room-"
SOCKETS = "/run/ironcurtain/room"  # the room's own folder, inside the room
SERVER_FILE = "/etc/ironcurtain/room.json"
LABEL = "org.ironcurtain.room"


def service(name: str) -> str:
    return f"{PREFIX}{name}"


def _service(spec: BackendSpec) -> dict[str, Any]:
    assert spec.room is not None
    command = [
        "ironcurtain",
        "mcp-proxy",
        "room",
        f"--server={SERVER_FILE}",
        f"--sockets={SOCKETS}",
    ]
    volumes: list[dict[str, Any]] = []
    if spec.room.workspace != "none":
        command.append(f"--workspace={ROOM_WORKSPACE}")
        volumes.append(
            {
                "type": "bind",
                "source": "${IRONCURTAIN_WORKSPACE}",
                "target": ROOM_WORKSPACE,
                "read_only": spec.room.workspace == "ro",
            }
        )
    volumes += [
        {  # 0700, the MCP uid's: NAME.sock (and the egress leg) live here
            "type": "bind",
            "source": f"${{IRONCURTAIN_SESSION_DIR}}/rooms/{spec.name}",
            "target": SOCKETS,
            "read_only": False,
        },
        {
            "type": "bind",
            "source": f"${{IRONCURTAIN_SESSION_DIR}}/room-servers/{spec.name}.json",
            "target": SERVER_FILE,
            "read_only": True,
        },
    ]
    return {
        "image": "ironcurtain/mcp-proxy:${IRONCURTAIN_IMAGE_TAG}",
        "command": command,
        "labels": {
            "org.ironcurtain.part": "session",
            "org.ironcurtain.session": "${IRONCURTAIN_SESSION_ID}",
            "org.ironcurtain.test-run": "${IRONCURTAIN_TEST_RUN:-}",
            LABEL: spec.name,
        },
        "logging": {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}},
        # runc: Landlock confines the child there; gVisor has none (session/runtime.py).
        "runtime": "${IRONCURTAIN_ROOM_RUNTIME:?set by ironcurtain run (session/runtime.py)}",
        "user": "${IRONCURTAIN_AGENT_UID}:${IRONCURTAIN_AGENT_GID}",  # the workspace's owner
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "privileged": False,
        "tmpfs": ["/tmp:size=64m"],  # noqa: S108 (the container's own tmpfs)
        "environment": {"HOME": "/tmp"},  # noqa: S108
        "pids_limit": 256,
        "mem_limit": "512m",
        "volumes": volumes,
        # No network namespace to join: loopback only, and nothing for the engine to set up.
        "network_mode": "none",
        "healthcheck": {
            "test": [
                "CMD",
                "python3",
                "-c",
                f"import os, sys; sys.exit(not os.path.exists('{SOCKETS}/{spec.name}.sock'))",
            ],
            "interval": "30s",
            "timeout": "5s",
            "retries": 3,
        },
    }


def compose_override(specs: Sequence[BackendSpec]) -> dict[str, Any]:
    """One service per server that runs in a room."""
    return {"services": {service(s.name): _service(s) for s in specs if s.sandbox}}
