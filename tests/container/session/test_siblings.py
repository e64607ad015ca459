"""Sibling services through a compose-built session: a team's TCP service on its own network is
reached from the agent only through the declared forward of the siblings sidecar; an undeclared
service on the same network is not; the declared one is visible through the socket proxy, others
are 403; the doors are never offered to the team network; bad declarations are refused."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.models.containers
import pytest
import yaml

from ironcurtain.images.project_build import trust
from ironcurtain.session import plan
from ironcurtain.session.run import Refused, Session

from ..conftest import TEST_LABELS
from ..probes import probe
from ..waiting import wait_logged
from .conftest import AGENT_UID, Env

Container = docker.models.containers.Container
PORT = 7000
# A TCP service that answers every connection with its name and what it was sent.
ECHO = r"""
import socket, sys, threading
name = sys.argv[1].encode()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000))
s.listen(16)
print("listening", flush=True)
def answer(c):
    with c:
        c.sendall(name + b":" + c.recv(100))
while True:
    c, _ = s.accept()
    threading.Thread(target=answer, args=(c,), daemon=True).start()
"""
# Run in the agent: connect to argv[1]:argv[2], send "ping", print the answer or the failure.
ASK = r"""
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), 3) as s:
        s.settimeout(3)
        s.sendall(b"ping")
        print("answer " + s.recv(100).decode())
except OSError as exc:
    print("blocked %s" % exc)
"""


@dataclass(frozen=True)
class Team:
    network: str
    declared: Container
    undeclared: Container


@dataclass(frozen=True)
class Running:
    session: Session
    containers: dict[str, Container]
    team: Team

    def ask(self, host: str, port: int) -> str:
        result = self.containers["agent"].exec_run(
            ["python3", "-c", ASK, host, str(port)],
            environment={"RES_OPTIONS": "timeout:1 attempts:1"},
        )
        return result.output.decode(errors="replace").strip()

    def docker_get(self, path: str) -> str:
        script = (
            # quoted: an '&' in the query must reach the door, not split the shell command
            f"curl -sS --max-time 10 -w '\\n%{{http_code}}' 'http://sidecar:{plan.DOCKER_PORT}{path}'"
        )
        result = self.containers["agent"].exec_run(["sh", "-c", script])
        return result.output.decode(errors="replace")


@pytest.fixture(scope="module")
def team(docker_client: docker.DockerClient, image: Callable[[str], str]) -> Iterator[Team]:
    suffix = uuid.uuid4().hex[:8]
    network = docker_client.networks.create(f"ic-test-dev-{suffix}", labels=TEST_LABELS)
    started: list[Container] = []
    try:
        for role in ("declared", "undeclared"):
            name = f"ic-test-{role}-{suffix}"
            started.append(
                docker_client.containers.run(
                    image("python"),
                    ["python3", "-c", ECHO, role],
                    name=name,
                    detach=True,
                    network=network.name,
                    labels=TEST_LABELS,
                    environment={"SIBLING_SECRET": "team-db-password-not-for-agents"},
                )
            )
        for container in started:
            wait_logged(container, "listening")
        yield Team(network.name, *started)
    finally:
        for container in started:
            container.remove(force=True)
        network.remove()


def _session(env: Env, workspace: Path, declared: Path) -> Session:
    return env.session(workspace, "(siblings)", siblings=declared)


def _declare(folder: Path, *entries: dict[str, object]) -> Path:
    path = folder / "siblings.yaml"
    path.write_text(yaml.safe_dump({"siblings": list(entries)}))
    return path


@pytest.fixture(scope="module")
def running(
    session_env: Env,
    team: Team,
    docker_client: docker.DockerClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Running]:
    workspace = tmp_path_factory.mktemp("siblings-ws")
    os.chown(workspace, AGENT_UID, AGENT_UID)  # the agent runs as the owner
    declared = _declare(
        tmp_path_factory.mktemp("siblings-cfg"),
        {
            "name": "echo",
            "network": team.network,
            "host": team.declared.name,
            "port": PORT,
            "docker_visible": True,
        },
    )
    session = _session(session_env, workspace, declared)
    try:
        session.prepare()
        session.up()
        session.check_isolation()
        label = f"com.docker.compose.project={session.name.project}"
        containers = {
            c.labels["com.docker.compose.service"]: c
            for c in docker_client.containers.list(filters={"label": label})
        }
        yield Running(session, containers, team)
    finally:
        session.teardown()


def test_control_the_agent_reaches_the_declared_sibling_by_its_name(running: Running) -> None:
    assert running.ask("echo", PORT) == "answer declared:ping"


def test_the_agent_cannot_reach_an_undeclared_service_on_the_same_network(
    running: Running,
) -> None:
    undeclared = running.team.undeclared
    address = undeclared.attrs["NetworkSettings"]["Networks"][running.team.network]["IPAddress"]
    for host in (undeclared.name, address, running.team.declared.name):
        assert running.ask(host, PORT).startswith("blocked"), host
    # The siblings sidecar forwards the declared port only.
    assert running.ask("echo", PORT + 1).startswith("blocked")
    assert not probe(running.containers["agent"], address, PORT).opened


def test_the_team_network_never_sees_the_doors(running: Running) -> None:
    networks = {
        service: set(c.attrs["NetworkSettings"]["Networks"])
        for service, c in running.containers.items()
    }
    joined = {s for s, names in networks.items() if running.team.network in names}
    assert joined == {"siblings"}
    assert not any(n.endswith("_control") for n in networks["siblings"])
    sibling_sidecar = running.containers["siblings"]
    address = sibling_sidecar.attrs["NetworkSettings"]["Networks"][running.team.network][
        "IPAddress"
    ]
    neighbour = running.team.undeclared  # a container on the team network
    for port in (plan.MCP_PORT, plan.MITM_PORT, plan.DOCKER_PORT):
        check = neighbour.exec_run(
            ["python3", "-c", f"import socket; socket.create_connection(('{address}', {port}), 2)"]
        )
        assert check.exit_code != 0, port
    # control: the same neighbour reaches the declared forward on that address
    check = neighbour.exec_run(
        ["python3", "-c", f"import socket; socket.create_connection(('{address}', {PORT}), 2)"]
    )
    assert check.exit_code == 0, check.output


def test_the_declared_sibling_is_visible_through_the_socket_proxy_and_nothing_else(
    running: Running,
) -> None:
    shown = running.docker_get(f"/containers/{running.team.declared.name}/json")
    body, _, status = shown.rpartition("\n")
    assert status == "200", shown
    assert json.loads(body)["Name"] == f"/{running.team.declared.name}"
    assert "team-db-password-not-for-agents" not in body  # inspect without the environment
    for other in (running.team.undeclared, running.containers["mcp-proxy"]):
        for path in (f"/containers/{other.name}/json", f"/containers/{other.id}/json"):
            assert running.docker_get(path).endswith("403"), path


@pytest.mark.parametrize(
    ("target", "status"),
    [
        # the engine would run `ps aeww` on the host, printing every process's environment
        ("/containers/{name}/top?ps_args=aeww", "403"),
        ("/v1.41/containers/{name}/top?ps_%61rgs=aeww", "403"),
        ("/v1.41/containers/{name}/logs?stdout=1&details=1", "403"),
        ("/v1.27/networks", "403"),  # before 1.28 the list shows every network's endpoints
        ("/v1.41/containers/json?filters=%7B%22name%22%3A%5B%22.%22%5D%7D", "403"),
        ("/v1.41/containers/{name}/top", "200"),  # controls
        ("/v1.41/containers/{name}/logs?stdout=1&stderr=1", "200"),
    ],
)
def test_the_agent_gets_no_sibling_environment_through_any_query_of_the_docker_door(
    running: Running, target: str, status: str
) -> None:
    answer = running.docker_get(target.format(name=running.team.declared.name))
    assert answer.rpartition("\n")[2] == status, answer[-300:]
    assert "team-db-password-not-for-agents" not in answer


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"network": "ic-test-no-such-network-0"}, "does not exist"),
        ({"network": "bridge"}, "not a team network"),
        ({"network": "{shared}"}, "not a team network"),
        ({"host": "ic-test-nobody", "docker_visible": True}, "docker_visible needs a container"),
        ({"port": plan.MCP_PORT}, "a door's port"),
        ({"colour": "red"}, "unknown keys"),
    ],
)
def test_a_bad_declaration_refuses_the_session_before_anything_starts(
    session_env: Env, team: Team, tmp_path: Path, entry: dict[str, object], reason: str
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    os.chown(workspace, AGENT_UID, AGENT_UID)  # the agent runs as the owner
    shared = session_env.environ["IRONCURTAIN_SHARED_NETWORK"]
    base = {"name": "echo", "network": team.network, "host": team.declared.name, "port": PORT}
    declared = {**base, **entry}
    if declared["network"] == "{shared}":
        declared["network"] = shared
    session = _session(session_env, workspace, _declare(tmp_path, declared))
    with pytest.raises(Refused, match=reason):
        session.prepare()
    assert not session.layout.root.exists()


def test_a_declaration_inside_the_workspace_is_refused(
    session_env: Env, team: Team, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    os.chown(workspace, AGENT_UID, AGENT_UID)  # the agent runs as the owner
    entry = {"name": "echo", "network": team.network, "host": team.declared.name, "port": PORT}
    session = _session(session_env, workspace, _declare(workspace, entry))
    with pytest.raises(Refused, match="inside the workspace"):
        session.prepare()


def test_a_declaration_in_the_projects_folder_is_used_only_as_the_user_trusted_it(
    session_env: Env, team: Team, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    folder = workspace / ".ironcurtain"
    folder.mkdir(parents=True)
    os.chown(workspace, AGENT_UID, AGENT_UID)  # the agent runs as the owner
    entry = {"name": "echo", "network": team.network, "host": team.declared.name, "port": PORT}
    _declare(folder, entry)
    trusted = session_env.state / "project-images" / "trusted"
    # Untrusted (as an agent could have left it): refused before anything starts.
    session = session_env.session(workspace, "(siblings)")
    with pytest.raises(Refused, match="ironcurtain images trust"):
        session.prepare()
    assert not session.layout.root.exists()
    # Trusted, then changed by the agent to reach the door ports: refused again.
    trust(workspace, trusted)
    _declare(folder, {**entry, "port": 22})
    with pytest.raises(Refused, match="changed since you last trusted it"):
        session_env.session(workspace, "(siblings)").prepare()
    # Trusted as it is: read from the bytes that were hashed, and checked like any declaration.
    _declare(folder, {**entry, "network": "ic-no-such-network"})
    trust(workspace, trusted)
    with pytest.raises(Refused, match="ic-no-such-network"):
        session_env.session(workspace, "(siblings)").prepare()
