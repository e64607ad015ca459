"""Container tests: a real Docker engine and our own images.

testcontainers' reaper (Ryuk) cannot be pulled here, so it is off and every fixture cleans up
after itself; the `no_leftovers` guard fails the run if any container or network survives it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

from ironcurtain.images.build import BuildSettings, ImageBuilder

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_LABEL = "org.ironcurtain.test"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"no Docker engine answers ({exc}); `make test` sets one up", pytrace=False)
    yield client
    client.close()


@pytest.fixture(scope="session")
def images(docker_client: docker.DockerClient) -> dict[str, str]:
    """Our images, built if their content changed (a no-op after `make images`)."""
    builder = ImageBuilder(docker_client, BuildSettings.from_environ(REPO_ROOT), say=lambda _: None)
    return builder.build()


def _ours(client: docker.DockerClient) -> tuple[set[str], set[str]]:
    containers = {c.id for c in client.containers.list(all=True)}
    networks = {n.id for n in client.networks.list()}
    return containers, networks


@pytest.fixture(scope="session", autouse=True)
def no_leftovers(docker_client: docker.DockerClient) -> Iterator[None]:
    """Fails the suite if it leaves a container or network behind (and then removes them)."""
    containers_before, networks_before = _ours(docker_client)
    yield
    containers_after, networks_after = _ours(docker_client)
    left_containers = containers_after - containers_before
    left_networks = networks_after - networks_before
    names = []
    for cid in left_containers:
        container = docker_client.containers.get(cid)
        names.append(f"container {container.name}")
        container.remove(force=True, v=True)
    for nid in left_networks:
        network = docker_client.networks.get(nid)
        names.append(f"network {network.name}")
        network.remove()
    assert not names, f"the container tests left these behind: {', '.join(sorted(names))}"
