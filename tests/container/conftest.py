"""Container tests: a real Docker engine and our own images.

testcontainers' reaper (Ryuk) cannot be pulled here, so it is off and every fixture cleans up
after itself. The `no_leftovers` guard fails the run if a container or network it created
survives: everything a test creates carries `TEST_LABELS` (testcontainers adds its own session
label too). Under CI=true, where nothing else runs, *any* new container or network fails the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import docker.errors
import pytest

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

from testcontainers.core.labels import SESSION_ID

from ironcurtain.images.build import BuildSettings, ImageBuilder
from ironcurtain.images.catalog import image_ref

if TYPE_CHECKING:
    from .redisserver import RedisServer

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_LABEL = "org.ironcurtain.test-run"
RUN_ID = uuid.uuid4().hex
TEST_LABELS = {TEST_LABEL: RUN_ID}
_TESTCONTAINERS_LABEL = "org.testcontainers.session-id"


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
def build_settings() -> BuildSettings:
    return BuildSettings.from_environ(REPO_ROOT)


@pytest.fixture(scope="session")
def images(docker_client: docker.DockerClient, build_settings: BuildSettings) -> dict[str, str]:
    """Our images, built if their content changed (a no-op after `make images`)."""
    return ImageBuilder(docker_client, build_settings, say=lambda _: None).build()


@pytest.fixture(scope="session")
def image(images: dict[str, str], build_settings: BuildSettings) -> Callable[[str], str]:
    """image("redis") -> the reference of this worktree's built image."""

    def ref(name: str) -> str:
        assert name in images, f"no image {name!r}; have {sorted(images)}"
        return image_ref(name, build_settings.image_tag)

    return ref


@pytest.fixture(scope="module")
def team_redis(
    image: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisServer]:
    """Our Redis image with a password file, one per test module (escalation, approval tests)."""
    from .redisserver import redis_server  # it imports TEST_LABELS from here

    with redis_server(image("redis"), tmp_path_factory.mktemp("redis")) as found:
        yield found


def _created_by_this_run(labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return labels.get(TEST_LABEL) == RUN_ID or labels.get(_TESTCONTAINERS_LABEL) == SESSION_ID


def _snapshot(client: docker.DockerClient) -> tuple[dict[str, object], dict[str, object]]:
    # Other worktrees share the engine: a container of theirs removed between docker-py's list and
    # its per-container inspect would raise NotFound here and error the whole run at setup.
    containers = {c.id: c for c in client.containers.list(all=True, ignore_removed=True)}
    networks = {n.id: n for n in client.networks.list()}
    return containers, networks


@pytest.fixture(scope="session", autouse=True)
def no_leftovers(docker_client: docker.DockerClient) -> Iterator[None]:
    """Fails the suite if it leaves a container or network behind (and then removes them)."""
    strict = os.environ.get("CI") == "true"
    containers_before, networks_before = _snapshot(docker_client)
    yield
    containers_after, networks_after = _snapshot(docker_client)
    left = []
    for cid in containers_after.keys() - containers_before.keys():
        container = containers_after[cid]
        ours = _created_by_this_run(container.labels)
        if strict or ours:
            left.append(f"container {container.name}")
        if ours:  # only ever remove what this run created
            container.remove(force=True, v=True)
    for nid in networks_after.keys() - networks_before.keys():
        network = networks_after[nid]
        ours = _created_by_this_run(network.attrs.get("Labels"))
        if strict or ours:
            left.append(f"network {network.name}")
        if ours:
            network.remove()
    assert not left, f"the container tests left these behind: {', '.join(sorted(left))}"
