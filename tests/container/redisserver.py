"""Our Redis image on a fixed loopback port, so a test can kill it and bring it back at one URL."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import HealthcheckWaitStrategy

from .conftest import TEST_LABELS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    def __init__(self, image: str, directory: Path) -> None:
        self.password_file = directory / "redis_password"
        self.password_file.write_text(secrets.token_hex(24))
        self.password_file.chmod(0o644)  # the redis user in the container reads it
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.container = (
            DockerContainer(image)
            .with_volume_mapping(str(self.password_file), "/run/secrets/redis_password", "ro")
            .with_kwargs(labels=TEST_LABELS)
            .waiting_for(HealthcheckWaitStrategy().with_startup_timeout(30))
        )
        # Loopback only, and the same host port after a restart (the URL must not change).
        self.container.ports["6379/tcp"] = ("127.0.0.1", self.port)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.url, password=self.password_file.read_text(), socket_timeout=5
        )

    def kill(self) -> None:
        self.container.get_wrapped_container().kill()

    def revive(self) -> None:
        self.container.get_wrapped_container().start()
        HealthcheckWaitStrategy().with_startup_timeout(30).wait_until_ready(self.container)


@contextmanager
def redis_server(image: str, directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(image, directory)
    with server.container:
        yield server
