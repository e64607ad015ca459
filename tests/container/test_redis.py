"""Our Redis image: it starts from the ACL file (hashes only, default user off) and the team's TLS
files (TLS only); a named user with its password works; everything without one, or with a wrong
one, is refused; without its ACL or TLS files it refuses to start."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
import redis
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import HealthcheckWaitStrategy

from ironcurtain.escalation import acl, tls
from ironcurtain.escalation.channel import TLSConnection
from ironcurtain.shared.pki import TeamTLS

from .conftest import TEST_LABELS

CREDENTIALS = {user: acl.Credential.new(user) for user in acl.SERVICES}


@pytest.fixture(scope="module")
def acl_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("redis-secret") / "redis_acl"
    path.write_text(acl.acl_file(list(CREDENTIALS.values())))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def team_tls(tmp_path_factory: pytest.TempPathFactory) -> TeamTLS:
    found = TeamTLS(tmp_path_factory.mktemp("redis-tls") / "tls")
    found.ensure([], say=lambda _: None)
    found.directory.chmod(0o755)
    return found


def tls_volumes(team_tls: TeamTLS) -> dict[str, dict[str, str]]:
    return {
        str(team_tls.server_cert): {"bind": "/run/secrets/redis_tls_cert", "mode": "ro"},
        str(team_tls.server_key): {"bind": "/run/secrets/redis_tls_key", "mode": "ro"},
        str(team_tls.ca): {"bind": "/run/secrets/redis_ca", "mode": "ro"},
    }


@pytest.fixture(scope="module")
def redis_container(
    image: Callable[[str], str], acl_file: Path, team_tls: TeamTLS
) -> Iterator[DockerContainer]:
    container = (
        DockerContainer(image("redis"))
        .with_exposed_ports(6379)
        .with_volume_mapping(str(acl_file), "/run/secrets/redis_acl", "ro")
        .with_kwargs(labels=TEST_LABELS)
        .waiting_for(HealthcheckWaitStrategy().with_startup_timeout(30))
    )
    for source, target in tls_volumes(team_tls).items():
        container.with_volume_mapping(source, target["bind"], "ro")
    container.tls_ca = team_tls.ca  # what _client trusts
    with container:
        yield container


def _client(
    container: DockerContainer, password: str | None, user: str | None = acl.ADMIN
) -> redis.Redis:
    """A TLS client that checks the name `redis` (the certificate's) while dialling the port."""
    pool = redis.ConnectionPool(
        connection_class=TLSConnection,
        tls_context=tls.context(container.tls_ca),
        tls_name="redis",
        host=container.get_container_host_ip(),
        port=int(container.get_exposed_port(6379)),
        username=user if password is not None else None,
        password=password,
        socket_timeout=5,
        decode_responses=True,
    )
    return redis.Redis.from_pool(pool)  # owns the pool: close() closes its sockets


def test_write_and_read_back_as_a_named_user(redis_container: DockerContainer) -> None:
    client = _client(redis_container, CREDENTIALS[acl.ADMIN].password)
    client.set("ironcurtain:probe", "round-trip")
    assert client.get("ironcurtain:probe") == "round-trip"


def test_a_client_without_a_user_and_password_is_refused(redis_container: DockerContainer) -> None:
    with pytest.raises(redis.AuthenticationError):
        _client(redis_container, None).get("ironcurtain:probe")


@pytest.mark.parametrize(
    ("user", "password"),
    [
        (acl.ADMIN, "not-the-password"),
        (acl.ADMIN, CREDENTIALS[acl.APPROVAL].password),  # another user's password
        ("default", CREDENTIALS[acl.ADMIN].password),
        ("ironcurtain-health", "guess"),
    ],
)
def test_a_wrong_password_or_user_is_refused(
    redis_container: DockerContainer, user: str, password: str
) -> None:
    with pytest.raises(redis.AuthenticationError):
        _client(redis_container, password, user).ping()


def test_no_persistence_and_protected_mode(redis_container: DockerContainer) -> None:
    client = _client(redis_container, CREDENTIALS[acl.ADMIN].password)
    assert client.config_get("save") == {"save": ""}
    assert client.config_get("appendonly") == {"appendonly": "no"}
    assert client.config_get("protected-mode") == {"protected-mode": "yes"}


def test_the_users_are_ours_and_the_default_user_is_off(redis_container: DockerContainer) -> None:
    client = _client(redis_container, CREDENTIALS[acl.ADMIN].password)
    rules = {line.split()[1]: line for line in client.acl_list()}
    assert set(rules) == {"default", *acl.SERVICES, "ironcurtain-health"}
    assert " off " in rules["default"] + " "
    assert "+ping" in rules["ironcurtain-health"]
    assert "~" not in rules["ironcurtain-health"].replace("resetkeys", "")


def test_redis_runs_as_the_redis_user_not_root(redis_container: DockerContainer) -> None:
    status = redis_container.exec(["cat", "/proc/1/status"]).output.decode()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1] != "0"


def test_no_password_is_in_the_container_config_or_its_acl(
    redis_container: DockerContainer, docker_client: docker.DockerClient
) -> None:
    attrs = docker_client.containers.get(redis_container.get_wrapped_container().id).attrs
    rendered = repr(attrs["Config"]) + repr(attrs["Args"]) + repr(attrs["Path"])
    stored = redis_container.exec(["cat", "/run/ironcurtain-redis/users.acl"]).output.decode()
    for credential in CREDENTIALS.values():
        assert credential.password not in rendered
        assert credential.password not in stored


def test_without_an_acl_file_redis_refuses_to_start(
    image: Callable[[str], str], docker_client: docker.DockerClient
) -> None:
    container = docker_client.containers.run(image("redis"), detach=True, labels=TEST_LABELS)
    try:
        result = container.wait(timeout=30)
        logs = container.logs().decode()
    finally:
        container.remove(force=True)
    assert result["StatusCode"] == 64
    assert "refusing to start: no ACL file" in logs


def test_an_acl_file_that_leaves_the_default_user_on_is_refused(
    image: Callable[[str], str], docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    loose = tmp_path / "redis_acl"
    loose.write_text("user default on nopass ~* +@all\n")
    loose.chmod(0o644)
    container = docker_client.containers.run(
        image("redis"),
        detach=True,
        labels=TEST_LABELS,
        volumes={str(loose): {"bind": "/run/secrets/redis_acl", "mode": "ro"}},
    )
    try:
        result = container.wait(timeout=30)
        logs = container.logs().decode()
    finally:
        container.remove(force=True)
    assert result["StatusCode"] == 64
    assert "must turn the default user off" in logs


def test_without_its_tls_files_redis_refuses_to_start(
    image: Callable[[str], str], docker_client: docker.DockerClient, acl_file: Path
) -> None:
    """No certificate, no Redis: there is no plaintext port to fall back to."""
    container = docker_client.containers.run(
        image("redis"),
        detach=True,
        labels=TEST_LABELS,
        volumes={str(acl_file): {"bind": "/run/secrets/redis_acl", "mode": "ro"}},
    )
    try:
        result = container.wait(timeout=30)
        logs = container.logs().decode()
    finally:
        container.remove(force=True)
    assert result["StatusCode"] == 64
    assert "refusing to start: no TLS file" in logs
