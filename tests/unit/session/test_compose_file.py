"""compose.yaml, read as data: the agent's hardening is exactly session/hardening.py's, the
networks are networks.py's, only the proxies have an egress leg, the MCP servers' rooms (the
override session/rooms.py writes from policy/servers.yaml) have no network and share their socket
folders with the MCP proxy only, every service is health-checked, and every per-session value is a
required variable that `Plan.compose_env()` provides."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ironcurtain.mcpproxy.rooms import room_specs
from ironcurtain.session import rooms
from ironcurtain.session.hardening import AgentHardening, sidecar_compose_service
from ironcurtain.session.identity import Identity
from ironcurtain.session.layout import SessionLayout
from ironcurtain.session.naming import SessionName
from ironcurtain.session.networks import AGENT, CONTROL, EGRESS
from ironcurtain.session.plan import SECRET_PROVIDERS, Plan, secret_name

COMPOSE = Path(__file__).resolve().parents[3] / "compose.yaml"
TEXT = COMPOSE.read_text()
DOC: dict[str, Any] = yaml.safe_load(TEXT)
SERVICES: dict[str, Any] = DOC["services"]
SERVERS = COMPOSE.parent / "policy" / "servers.yaml"
ROOMS: dict[str, Any] = rooms.compose_override(
    room_specs(yaml.safe_load(SERVERS.read_text()), str(SERVERS))
)["services"]


def _plan() -> Plan:
    name = SessionName("wt-abc123", "0123abcd")
    return Plan(
        name=name,
        layout=SessionLayout(Path("/state/sessions") / name.project),
        agent="scripted",
        agent_image="ironcurtain/agent-scripted:t",
        image_tag="t",
        workspace=Path("/srv/ws"),
        policy_dir=Path("/repo/policy"),
        task="fix it",
        owner=Identity(4242, 4343),
        mitm_user="10001:10001",
        docker_socket="/var/run/docker.sock",
        docker_socket_gid=998,
        shared_network="ironcurtain-shared",
    )


def test_every_required_variable_is_provided_by_the_plan() -> None:
    required = set(re.findall(r"\$\{([A-Z_]+):\?", TEXT))
    assert required <= set(_plan().compose_env())
    assert "IRONCURTAIN_SESSION_DIR" in required


def test_the_agent_service_has_exactly_the_hardening_settings() -> None:
    # The agent's identity is the plan's: compose.yaml as the plan's variables fill it in.
    env = _plan().compose_env()
    filled = re.sub(
        r"\$\{(IRONCURTAIN_AGENT_[UG]ID)(?::\?[^}]*)?\}", lambda m: env[m.group(1)], TEXT
    )
    expected = AgentHardening(workspace="/srv/ws", uid=4242, gid=4343).compose_service()
    agent = yaml.safe_load(filled)["services"]["agent"]
    for key, value in expected.items():
        if key == "volumes":
            workspace = agent["volumes"][0]
            assert workspace["target"] == "/workspace"
            assert workspace["read_only"] is False
            assert workspace["source"].startswith("${IRONCURTAIN_WORKSPACE")
            assert all(v["read_only"] for v in agent["volumes"][1:])
        elif key == "sysctls":
            assert {k: str(v) for k, v in agent["sysctls"].items()} == value
        else:
            assert agent[key] == value, key


def test_the_sidecar_has_the_hardening_settings() -> None:
    sidecar = SERVICES["sidecar"]
    for key, value in sidecar_compose_service().items():
        if key == "sysctls":
            assert {k: str(v) for k, v in sidecar["sysctls"].items()} == value
        else:
            assert sidecar[key] == value, key


@pytest.mark.parametrize("spec", [AGENT, CONTROL, EGRESS], ids=lambda s: s.role)
def test_the_networks_are_the_specs(spec: Any) -> None:
    entry = dict(DOC["networks"][spec.role])
    entry.pop("labels")
    assert entry == spec.compose()


def _owner(name: str) -> str:
    """The service whose network namespace `name` runs in (itself, or the one it shares)."""
    mode = SERVICES[name].get("network_mode", "")
    return _owner(mode.removeprefix("service:")) if mode.startswith("service:") else name


def _networks(name: str) -> list[str]:
    """The networks reachable from `name`'s network namespace."""
    return list(SERVICES[_owner(name)].get("networks", []))


def test_the_agents_only_neighbour_is_the_sidecar() -> None:
    on_agent = {_owner(name) for name in SERVICES if "agent" in _networks(name)}
    assert on_agent == {"agent", "sidecar"}
    assert SERVICES["agent"]["networks"] == ["agent"]


def test_only_the_socket_proxy_shares_a_namespace_the_sidecars_and_only_on_its_loopback() -> None:
    sharing = {name: _owner(name) for name in SERVICES if _owner(name) != name}
    assert sharing == {"socket-proxy": "sidecar"}
    environment = SERVICES["socket-proxy"]["environment"]
    assert environment["SOCKETPROXY_BIND"] == "127.0.0.1"
    assert "sysctls" not in SERVICES["socket-proxy"]  # the sidecar's apply (IPv6 off)
    assert SERVICES["sidecar"]["sysctls"]["net.ipv6.conf.all.disable_ipv6"] == "1"


def test_only_the_proxies_have_an_egress_leg_and_only_the_mcp_proxy_joins_the_shared_network() -> (
    None
):
    assert {n for n in SERVICES if "egress" in _networks(n)} == {"mitm-proxy", "mcp-proxy"}
    assert {n for n in SERVICES if "shared" in _networks(n)} == {"mcp-proxy"}
    assert DOC["networks"]["shared"]["external"] is True


def test_the_rooms_have_no_network_and_every_other_service_joins_declared_ones() -> None:
    assert set(ROOMS) == {"mcp-room-filesystem", "mcp-room-git", "mcp-room-fetch"}
    assert not set(ROOMS) & set(SERVICES)
    for name, room in ROOMS.items():
        assert room["network_mode"] == "none", name
        assert "networks" not in room, name
    for name, service in SERVICES.items():
        if name == "socket-proxy":  # the sidecar's namespace (tested above)
            assert service["network_mode"] == "service:sidecar"
            assert "networks" not in service
        else:
            assert "network_mode" not in service, name
            assert set(service["networks"]) <= set(DOC["networks"]), name
    assert set(DOC["networks"]) == {"agent", "control", "egress", "shared"}


def test_each_room_folder_is_mounted_into_the_mcp_proxy_and_its_own_room_only() -> None:
    everything = {**SERVICES, **ROOMS}
    proxy = [v for v in SERVICES["mcp-proxy"]["volumes"] if "/rooms" in v["source"]]
    assert proxy == [
        {
            "type": "bind",
            "source": "${IRONCURTAIN_SESSION_DIR}/rooms",
            "target": "/run/ironcurtain/rooms",
            "read_only": False,  # it serves the egress legs there
        }
    ]
    assert "--sandbox=unix:/run/ironcurtain/rooms" in SERVICES["mcp-proxy"]["command"]
    for name in ("filesystem", "git", "fetch"):
        source = f"${{IRONCURTAIN_SESSION_DIR}}/rooms/{name}"
        holders = {
            service
            for service, body in everything.items()
            for v in body.get("volumes", [])
            if v["source"] == source
        }
        assert holders == {f"mcp-room-{name}"}, name
        assert f"--sockets={rooms.SOCKETS}" in ROOMS[f"mcp-room-{name}"]["command"]
    # Nothing mounts the session folder itself, or an ancestor of the socket folder.
    for name, service in everything.items():
        for volume in service.get("volumes", []):
            assert volume["source"].rstrip("/") != "${IRONCURTAIN_SESSION_DIR}", name


def test_every_service_is_health_checked_slowly_and_start_up_waits_on_the_doors_instead() -> None:
    # Readiness is the doors answering from inside the agent (run.py up), not Docker's health:
    # a check every second per container cost a quarter of a core per session (Docker 20.10).
    for name, service in SERVICES.items():
        assert service["healthcheck"]["test"], name
        assert service["healthcheck"]["interval"] == "30s", name
        for dependency in service.get("depends_on", {}).values():
            assert dependency == {"condition": "service_started"}, name


def test_every_container_is_labelled_for_the_session_and_test_runs() -> None:
    for name, service in SERVICES.items():
        assert "org.ironcurtain.test-run" in service["labels"], name
    for name, network in DOC["networks"].items():
        if name != "shared":
            assert "org.ironcurtain.test-run" in network["labels"], name


def test_secrets_are_files_and_only_the_proxies_get_them() -> None:
    declared = set(DOC["secrets"])
    audit_keys = {"audit_key_mcp", "audit_key_mitm"}
    assert {secret_name(p) for p in SECRET_PROVIDERS} | {
        "redis_password",
        "redis_ca",
    } | audit_keys == declared
    assert all("file" in entry for entry in DOC["secrets"].values())
    assert set(SERVICES["mitm-proxy"]["secrets"]) == {secret_name(p) for p in SECRET_PROVIDERS} | {
        "audit_key_mitm"
    }
    assert SERVICES["mcp-proxy"]["secrets"] == ["redis_password", "redis_ca", "audit_key_mcp"]
    for name in ("agent", "sidecar", "socket-proxy"):
        assert "secrets" not in SERVICES[name], name


def test_no_service_takes_a_secret_from_its_environment() -> None:
    for name, service in SERVICES.items():
        for key in service.get("environment", {}) or {}:
            assert not re.search(r"KEY|TOKEN|PASSWORD|SECRET", key), (name, key)


def test_the_wake_folder_is_the_mcp_proxys_alone() -> None:
    source = "${IRONCURTAIN_SESSION_DIR}/wake"
    mounts = {
        name: [v["read_only"] for v in service.get("volumes", []) if v["source"] == source]
        for name, service in {**SERVICES, **ROOMS}.items()
    }
    assert {name: ro for name, ro in mounts.items() if ro} == {"mcp-proxy": [False]}
    assert "--sandbox-wake=/run/ironcurtain/wake" in SERVICES["mcp-proxy"]["command"]


def test_each_audit_key_goes_to_the_one_proxy_that_writes_its_log() -> None:
    holders = {
        key: [n for n, svc in {**SERVICES, **ROOMS}.items() if key in (svc.get("secrets") or [])]
        for key in ("audit_key_mcp", "audit_key_mitm")
    }
    assert holders == {"audit_key_mcp": ["mcp-proxy"], "audit_key_mitm": ["mitm-proxy"]}
    assert "--audit-key-file=/run/secrets/audit_key_mcp" in SERVICES["mcp-proxy"]["command"]


def test_no_container_mounts_the_sessions_anchor_folder() -> None:
    for name, service in {**SERVICES, **ROOMS}.items():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            assert "anchor" not in source, name


def test_the_agent_and_every_room_run_under_the_runtime_the_session_chose() -> None:
    assert SERVICES["agent"]["runtime"].startswith("${IRONCURTAIN_AGENT_RUNTIME:?")
    assert ROOMS
    for name, room in ROOMS.items():
        assert room["runtime"].startswith("${IRONCURTAIN_ROOM_RUNTIME:?"), name
    # Our own proxies keep the engine's default (runc): no runtime key of theirs to forget.
    assert not [s for s, service in SERVICES.items() if s != "agent" and "runtime" in service]
