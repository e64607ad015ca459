"""Our Redis image: authenticated round trip works; everything without the password is refused."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
import redis
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import HealthcheckWaitStrategy

from .conftest import TEST_LABELS


@pytest.fixture(scope="module")
def password_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("redis-secret") / "redis_password"
    path.write_text(secrets.token_hex(24))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def redis_container(image: Callable[[str], str], password_file: Path) -> Iterator[DockerContainer]:
    container = (
        DockerContainer(image("redis"))
        .with_exposed_ports(6379)
        .with_volume_mapping(str(password_file), "/run/secrets/redis_password", "ro")
        .with_kwargs(labels=TEST_LABELS)
        .waiting_for(HealthcheckWaitStrategy().with_startup_timeout(30))
    )
    with container:
        yield container


def _client(container: DockerContainer, password: str | None) -> redis.Redis:
    return redis.Redis(
        host=container.get_container_host_ip(),
        port=int(container.get_exposed_port(6379)),
        password=password,
        socket_timeout=5,
        decode_responses=True,
    )


def test_write_and_read_back_with_the_password(
    redis_container: DockerContainer, password_file: Path
) -> None:
    client = _client(redis_container, password_file.read_text())
    client.set("ironcurtain:probe", "round-trip")
    assert client.get("ironcurtain:probe") == "round-trip"


def test_a_client_without_the_password_is_refused(redis_container: DockerContainer) -> None:
    with pytest.raises(redis.AuthenticationError):
        _client(redis_container, None).get("ironcurtain:probe")


def test_a_wrong_password_is_refused(redis_container: DockerContainer) -> None:
    with pytest.raises(redis.AuthenticationError):
        _client(redis_container, "not-the-password").ping()


def test_no_persistence_and_protected_mode(
    redis_container: DockerContainer, password_file: Path
) -> None:
    client = _client(redis_container, password_file.read_text())
    assert client.config_get("save") == {"save": ""}
    assert client.config_get("appendonly") == {"appendonly": "no"}
    assert client.config_get("protected-mode") == {"protected-mode": "yes"}


def test_redis_runs_as_the_redis_user_not_root(redis_container: DockerContainer) -> None:
    status = redis_container.exec(["cat", "/proc/1/status"]).output.decode()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1] != "0"


def test_the_password_is_not_in_the_container_config(
    redis_container: DockerContainer, password_file: Path, docker_client: docker.DockerClient
) -> None:
    attrs = docker_client.containers.get(redis_container.get_wrapped_container().id).attrs
    rendered = repr(attrs["Config"]) + repr(attrs["Args"]) + repr(attrs["Path"])
    assert password_file.read_text() not in rendered


def test_without_a_password_file_redis_refuses_to_start(
    image: Callable[[str], str], docker_client: docker.DockerClient
) -> None:
    container = docker_client.containers.run(image("redis"), detach=True, labels=TEST_LABELS)
    try:
        result = container.wait(timeout=30)
        logs = container.logs().decode()
    finally:
        container.remove(force=True)
    assert result["StatusCode"] == 64
    assert "refusing to start: no password file" in logs
