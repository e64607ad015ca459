"""The sidecar image: forwards exactly the declared ports and nothing else."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import docker
import docker.models.containers
import docker.models.networks
import pytest

from .conftest import RUN_ID, TEST_LABELS
from .probes import listening_ports, probe, server_command, server_healthcheck
from .waiting import wait_healthy

SHORT = RUN_ID[:8]


@dataclass(frozen=True)
class Stage:
    sidecar: docker.models.containers.Container
    client: docker.models.containers.Container  # only on the client network, with the sidecar
    neighbour: docker.models.containers.Container  # on the upstream network (controls)
    upstream: str


@pytest.fixture(scope="module")
def stage(docker_client: docker.DockerClient, image: Callable[[str], str]) -> Iterator[Stage]:
    made: list[docker.models.containers.Container] = []
    nets: list[docker.models.networks.Network] = []
    try:
        client_net = docker_client.networks.create(
            f"ic-{SHORT}-sc-client", internal=True, labels=TEST_LABELS
        )
        nets.append(client_net)
        upstream_net = docker_client.networks.create(
            f"ic-{SHORT}-sc-upstream", internal=True, labels=TEST_LABELS
        )
        nets.append(upstream_net)
        upstream = f"ic-{SHORT}-sc-upstream"
        # Serves 8080 (declared) and 9090 (not declared): only the first may come through.
        script = (
            "import subprocess, sys; "
            f"subprocess.Popen({server_command(9090, 'undeclared-9090')!r}); "
            f"subprocess.run({server_command(8080, 'declared-8080')!r})"
        )
        made.append(
            docker_client.containers.run(
                image("python"),
                ["python3", "-c", script],
                name=upstream,
                network=upstream_net.name,
                detach=True,
                labels=TEST_LABELS,
                healthcheck=server_healthcheck(9090),
            )
        )
        sidecar = docker_client.containers.create(
            image("sidecar"),
            name=f"ic-{SHORT}-sc-sidecar",
            network=upstream_net.name,
            environment={"FORWARDS": f"8080:{upstream}:8080, 2222:{upstream}:2222"},
            labels=TEST_LABELS,
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
        )
        made.append(sidecar)
        client_net.connect(sidecar)
        sidecar.start()
        client = docker_client.containers.run(
            image("agent-scripted"),
            name=f"ic-{SHORT}-sc-client",
            network=client_net.name,
            detach=True,
            labels=TEST_LABELS,
        )
        made.append(client)
        neighbour = docker_client.containers.run(
            image("agent-scripted"),
            name=f"ic-{SHORT}-sc-neighbour",
            network=upstream_net.name,
            detach=True,
            labels=TEST_LABELS,
        )
        made.append(neighbour)
        for container in made[:2]:
            wait_healthy(container)
        yield Stage(sidecar, client, neighbour, upstream)
    finally:
        for container in made:
            container.remove(force=True)
        for net in nets:
            net.remove()


def test_a_declared_forward_reaches_its_service(stage: Stage) -> None:
    outcome = probe(stage.client, stage.sidecar.name, 8080)
    assert outcome.opened, outcome
    assert outcome.detail == "declared-8080"


def test_the_client_cannot_reach_the_service_directly(stage: Stage) -> None:
    assert not probe(stage.client, stage.upstream, 8080).opened


def test_an_undeclared_port_of_the_sidecar_is_closed(stage: Stage) -> None:
    assert probe(stage.neighbour, stage.upstream, 9090).opened  # control: the service is there
    outcome = probe(stage.client, stage.sidecar.name, 9090)
    assert not outcome.opened
    assert "ConnectionRefused" in outcome.detail


def test_the_sidecar_listens_on_exactly_the_declared_ports(stage: Stage) -> None:
    assert listening_ports(stage.sidecar) == {8080, 2222}


def test_the_sidecar_runs_as_a_non_root_user(stage: Stage) -> None:
    status = stage.sidecar.exec_run(["cat", "/proc/1/status"]).output.decode()
    uid = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1]
    assert uid != "0"


@pytest.mark.parametrize(
    ("forwards", "reason"),
    [
        ("", "no FORWARDS declared"),
        (" , ", "no FORWARDS declared"),
        ("8080", "malformed forward"),
        ("8080:host", "malformed forward"),
        ("8080:host:80:90", "malformed forward"),
        ("8080:-host:80", "malformed forward"),
        ("8080:host name:80", "malformed forward"),
        ("8080:ho$t:80", "malformed forward"),
        ("8080:host:80;id", "malformed forward"),
        ("80:host:80", "use 1024-65535"),
        ("70000:host:80", "use 1024-65535"),
        ("8080:host:0", "not a TCP port"),
        ("8080:10.0.0.1:80", "by name, not address"),
        ("8080:a:80,8080:b:80", "declared twice"),
    ],
)
def test_a_malformed_forward_list_is_refused(stage: Stage, forwards: str, reason: str) -> None:
    """The same parser runs at start-up and in the health check; the table runs the latter."""
    result = stage.sidecar.exec_run(
        ["/usr/local/bin/ironcurtain-sidecar", "health"], environment={"FORWARDS": forwards}
    )
    assert result.exit_code == 64
    assert reason in result.output.decode()


def test_without_forwards_the_sidecar_refuses_to_start(
    docker_client: docker.DockerClient, image: Callable[[str], str]
) -> None:
    container = docker_client.containers.run(
        image("sidecar"), detach=True, labels=TEST_LABELS, network_mode="none"
    )
    try:
        result = container.wait(timeout=30)
        logs = container.logs().decode()
    finally:
        container.remove(force=True)
    assert result["StatusCode"] == 64
    assert "refusing to start: no FORWARDS declared" in logs
