"""What a container on the sessions' network can reach of the shared stack: a probe container
there tries each target and prints one line per target ("HOST open" or "HOST closed ERROR")."""

from __future__ import annotations

from collections.abc import Iterable

import docker
from docker.models.containers import Container

from ..conftest import TEST_LABELS

PROBE = """
import socket, sys
for host, port in [tuple(a.rsplit(":", 1)) for a in sys.argv[1:]]:
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        print(host, "open")
    except OSError as exc:
        print(host, "closed", type(exc).__name__)
"""


def service(client: docker.DockerClient, project: str, name: str) -> Container:
    """The one running container of compose service `name` in `project`."""
    (found,) = client.containers.list(
        filters={
            "label": [f"com.docker.compose.project={project}", f"com.docker.compose.service={name}"]
        }
    )
    return found


def probe_from(
    client: docker.DockerClient, image: str, network: str, targets: Iterable[str]
) -> list[str]:
    """The probe's lines, one per `HOST:PORT` target, from a container on `network`."""
    probe = client.containers.run(
        image, ["python3", "-c", PROBE, *targets], detach=True, network=network, labels=TEST_LABELS
    )
    try:
        assert probe.wait(timeout=60)["StatusCode"] == 0
        return probe.logs().decode().splitlines()
    finally:
        probe.remove(force=True)


def assert_sessions_reach_redis_only(
    client: docker.DockerClient,
    image: str,
    network: str,
    page: Container,
    port: int,
    extra: Iterable[str] = (),
) -> None:
    """From the sessions' `network`: Redis answers (the control: what sessions need is there);
    the approval `page` is on none of that network, and neither its name, any of its addresses
    nor `extra` answers."""
    networks = page.attrs["NetworkSettings"]["Networks"]
    assert network not in networks
    name = page.labels["com.docker.compose.service"]
    addresses = [n["IPAddress"] for n in networks.values() if n["IPAddress"]]
    targets = ["redis:6379", f"{name}:{port}", *(f"{a}:{port}" for a in addresses), *extra]
    lines = probe_from(client, image, network, targets)
    assert lines[0] == "redis open"
    assert len(lines) == len(targets)
    assert all(" closed " in line for line in lines[1:]), lines
