"""Many sessions on one engine (issue 22): more at once than Docker's default address pools hold
(about 31 networks, three a session), each on subnets of IronCurtain's own pool, each isolated
from the others; and networks a crashed session left behind are reclaimed by the next start.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Network
from pathlib import Path

import docker
import docker.models.containers
import pytest

from ironcurtain.session import leases, plan
from ironcurtain.session.naming import session_name
from ironcurtain.session.networks import SESSION_NETWORKS
from ironcurtain.session.run import Options, Session

from .conftest import AGENT_UID, Env, cli, popen, project_leftovers

SESSIONS = 12  # 36 session networks: more than the default pools' ~31
PARALLEL = 4
POOL = leases.pool_from({})

# From inside one agent: which of these (address, port) accept a connection (one exec for all).
REACH = r"""
import json, socket, sys, threading
targets, opened = json.loads(sys.argv[1]), []
def attempt(address, port):
    try:
        with socket.create_connection((address, port), 2):
            opened.append("%s:%d" % (address, port))
    except OSError:
        pass
threads = [threading.Thread(target=attempt, args=tuple(t)) for t in targets]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(sorted(opened)))
"""

Container = docker.models.containers.Container


def _session(env: Env, workspace: Path) -> Session:
    """A scripted-agent session without the fake vendor (the doors are all it needs here)."""
    options = Options(
        task="(density)",
        agent="scripted",
        workspace=workspace,
        session_id=secrets.token_hex(4),
        build_images=False,
    )
    return Session(options, say=lambda _: None, environ=env.environ)


def _containers(client: docker.DockerClient, project: str) -> dict[str, Container]:
    label = f"com.docker.compose.project={project}"
    return {
        c.labels["com.docker.compose.service"]: c
        for c in client.containers.list(filters={"label": label})
    }


def _addresses(container: Container) -> dict[str, str]:
    """network name -> the container's address on it."""
    networks = container.attrs["NetworkSettings"]["Networks"]
    return {name: n["IPAddress"] for name, n in networks.items() if n.get("IPAddress")}


@pytest.fixture(scope="module")
def many(session_env: Env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Session]]:
    workspace = tmp_path_factory.mktemp("density-ws")
    os.chown(workspace, AGENT_UID, AGENT_UID)  # the agent runs as the owner
    sessions = [_session(session_env, workspace) for _ in range(SESSIONS)]

    def start(session: Session) -> None:
        session.prepare()
        session.up()
        session.check_isolation()  # hardening, the doors answer, no gateway reaches the host

    try:
        with ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(start, sessions))  # the first failure is raised here, after all ran
        yield sessions
    finally:
        with ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(Session.teardown, sessions))


def test_more_sessions_than_the_default_pools_hold_run_on_the_pools_subnets(
    many: list[Session], docker_client: docker.DockerClient
) -> None:
    subnets: list[IPv4Network] = []
    for session in many:
        for spec in SESSION_NETWORKS:
            network = docker_client.networks.get(f"{session.name.project}_{spec.role}")
            config = network.attrs["IPAM"]["Config"]
            assert len(config) == 1
            subnet = IPv4Network(config[0]["Subnet"])
            assert subnet.prefixlen == 28
            assert any(subnet.subnet_of(block) for block in POOL), subnet
            assert str(subnet) == session.plan.subnets[spec.role]  # what was leased is used
            assert network.attrs["Internal"] is spec.internal
            subnets.append(subnet)
    assert len(subnets) == 3 * SESSIONS > 31
    for i, subnet in enumerate(subnets):
        assert not any(subnet.overlaps(other) for other in subnets[i + 1 :]), subnet


def test_the_agent_networks_gateway_is_not_on_the_host_with_an_explicit_subnet(
    many: list[Session], docker_client: docker.DockerClient
) -> None:
    # inhibit_ipv4 with a given subnet: the gateway address IPAM reserves is still not put on the
    # host bridge (the control network's, without it, is: the control case).
    host = subprocess.run(
        ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    for session in many:
        agent_gateway = str(IPv4Network(session.plan.subnets["agent"]).network_address + 1)
        control_gateway = str(IPv4Network(session.plan.subnets["control"]).network_address + 1)
        assert f" {agent_gateway}/" not in host
        assert f" {control_gateway}/" in host
        # the engine reports the gateways it made (compose.yaml gives them): those were probed
        assert session._gateways()[:3] == [session.plan.gateway(n.role) for n in SESSION_NETWORKS]


def test_no_agent_reaches_anything_of_another_session_while_its_own_doors_answer(
    many: list[Session], docker_client: docker.DockerClient
) -> None:
    by_session = [_containers(docker_client, s.name.project) for s in many]

    def reach(i: int) -> tuple[list[str], list[str]]:
        own_sidecar = _addresses(by_session[i]["sidecar"])[f"{many[i].name.project}_agent"]
        foreign = []
        for j, others in enumerate(by_session):
            if j == i:
                continue
            for service in ("agent", "sidecar", "mcp-proxy", "mitm-proxy"):
                for address in _addresses(others[service]).values():
                    foreign += [[address, port] for port in (plan.MCP_PORT, plan.MITM_PORT, 22)]
        controls = [[own_sidecar, plan.MCP_PORT], [own_sidecar, plan.MITM_PORT]]
        argv = ["python3", "-c", REACH, json.dumps(foreign + controls)]
        done = by_session[i]["agent"].exec_run(argv)
        opened = json.loads(done.output.decode().strip().splitlines()[-1])
        return opened, sorted(f"{a}:{p}" for a, p in controls)

    with ThreadPoolExecutor(PARALLEL) as pool:
        for i, (opened, controls) in enumerate(pool.map(reach, range(len(many)))):
            assert opened == controls, (i, opened)


def _kill_mid_session(env: Env, workspace: Path) -> tuple[str, subprocess.Popen[str]]:
    """`ironcurtain run` killed with SIGKILL once its session is up (no teardown ran)."""
    session_id = secrets.token_hex(4)
    proc = popen(env, *env.run_args("--agent", "scripted", "--task", "hold", "--workspace",
                                    str(workspace), "--session-id", session_id,
                                    "--escalation-timeout", "120"))  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if "isolation holds" in line:
            break
    else:
        proc.wait()
        raise AssertionError("the session did not start")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    return session_id, proc


def _networks_of(client: docker.DockerClient, project: str) -> list[str]:
    label = f"com.docker.compose.project={project}"
    return sorted(n.name for n in client.networks.list(filters={"label": label}))


def test_networks_a_crashed_session_left_behind_are_reclaimed_by_the_next_start(
    session_env: Env, workspace: Path, docker_client: docker.DockerClient
) -> None:
    session_id, _ = _kill_mid_session(session_env, workspace)
    project = session_name(workspace, session_id).project
    # The crash took its containers too (an engine restart, `docker rm -f`): networks remain.
    for container in docker_client.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={project}"}
    ):
        container.remove(force=True)
    left = _networks_of(docker_client, project)
    assert left == sorted(f"{project}_{spec.role}" for spec in SESSION_NETWORKS)
    said: list[str] = []
    session = _session(session_env, workspace)
    session.say = said.append
    try:
        session.prepare()  # leases its subnets: the sweep ran first
        assert _networks_of(docker_client, project) == []
        assert any("reclaimed the networks of stopped sessions" in s for s in said), said
        assert all(project in s for s in said if "reclaimed" in s)
    finally:
        session.teardown()
    assert project_leftovers(docker_client, project) == []


def test_ironcurtain_down_removes_a_crashed_sessions_containers_and_networks(
    session_env: Env, workspace: Path, docker_client: docker.DockerClient
) -> None:
    session_id, _ = _kill_mid_session(session_env, workspace)
    project = session_name(workspace, session_id).project
    assert _containers(docker_client, project)  # still running: nothing tore it down
    down = cli(session_env, "down", session_id)
    assert down.returncode == 0, down.stdout + down.stderr
    assert project_leftovers(docker_client, project) == []
