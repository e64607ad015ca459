"""Each MCP server's room (session/rooms.py) holds what it serves and nothing else: the
filesystem and git rooms the workspace alone, fetch no workspace, a team's server nothing by
default; no room mounts the policy, the audit, a secret or the wake folder; no network; the
hardening of every container of ours."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ironcurtain.mcpproxy.config import ConfigError
from ironcurtain.mcpproxy.rooms import dump_spec, read_spec, room_specs
from ironcurtain.session import rooms

SERVERS = Path(__file__).resolve().parents[3] / "policy" / "servers.yaml"
DEFAULT = room_specs(yaml.safe_load(SERVERS.read_text()), str(SERVERS))
OVERRIDE: dict[str, Any] = rooms.compose_override(DEFAULT)["services"]
FORBIDDEN = ("policy", "audit", "secrets", "wake", "sandbox", "docker.sock", "agent", "mitm")


def _sources(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    return {v["source"]: (v["target"], v["read_only"]) for v in service["volumes"]}


@pytest.mark.parametrize("name", ["filesystem", "git"])
def test_the_workspace_servers_rooms_hold_the_workspace_their_folder_and_their_server(
    name: str,
) -> None:
    assert _sources(OVERRIDE[f"mcp-room-{name}"]) == {
        "${IRONCURTAIN_WORKSPACE}": ("/workspace", False),
        f"${{IRONCURTAIN_SESSION_DIR}}/rooms/{name}": ("/run/ironcurtain/room", False),
        f"${{IRONCURTAIN_SESSION_DIR}}/room-servers/{name}.json": (rooms.SERVER_FILE, True),
    }


def test_the_fetch_room_holds_no_workspace() -> None:
    assert "${IRONCURTAIN_WORKSPACE}" not in _sources(OVERRIDE["mcp-room-fetch"])
    assert "--workspace=/workspace" not in OVERRIDE["mcp-room-fetch"]["command"]


def test_no_room_mounts_the_policy_audit_secrets_or_wake_folder_and_none_has_a_network() -> None:
    for name, service in OVERRIDE.items():
        for source in _sources(service):
            assert not any(word in source for word in FORBIDDEN), (name, source)
        assert service["network_mode"] == "none", name
        assert "secrets" not in service, name
        assert "networks" not in service, name
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert service["security_opt"] == ["no-new-privileges:true"]
        assert service["privileged"] is False
        assert service["user"] == "${IRONCURTAIN_AGENT_UID}:${IRONCURTAIN_AGENT_GID}"
        assert service["labels"][rooms.LABEL] == name.removeprefix("mcp-room-")


def test_a_team_server_gets_a_room_with_nothing_and_a_read_only_workspace_when_asked() -> None:
    doc = {
        "mcpServers": {
            "notes": {"command": "notes-server"},
            "lint": {"command": "lint-server", "room": {"workspace": "ro"}},
            "docs": {"url": "http://docs:9000/mcp"},  # remote: reached as it is, no room
        }
    }
    found = rooms.compose_override(room_specs(doc, "servers.yaml"))["services"]
    assert set(found) == {"mcp-room-notes", "mcp-room-lint"}
    assert "${IRONCURTAIN_WORKSPACE}" not in _sources(found["mcp-room-notes"])
    assert _sources(found["mcp-room-lint"])["${IRONCURTAIN_WORKSPACE}"] == ("/workspace", True)


def test_a_rooms_server_file_carries_the_room_view_of_its_variables(tmp_path: Path) -> None:
    (fs,) = (s for s in DEFAULT if s.name == "filesystem")
    assert fs.args == ("/workspace",)
    path = tmp_path / "filesystem.json"
    path.write_text(dump_spec(fs))
    assert read_spec(path) == fs


def test_a_rooms_server_file_that_is_not_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"name": "x", "url": "http://x"}')
    with pytest.raises(ConfigError, match="room"):
        read_spec(path)
