"""Our Redis image on a fixed loopback port, so a test can kill it and bring it back at one URL.

It starts as the team stack does: from an ACL file (the service users, hashes only, default
off) and the team's TLS files (a CA of its own; the certificate names 127.0.0.1, the address
tests dial, and `redis`); `url` is `rediss://` and `ca_file` the CA every client must check.
`admin_file` is the host CLI's credential; `session_file(id)` makes a session's user exactly as
`ironcurtain run` does and returns the credential file it hands the MCP proxy.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import HealthcheckWaitStrategy

from ironcurtain.escalation import acl, users
from ironcurtain.escalation.channel import connect
from ironcurtain.shared.pki import TeamTLS

from .conftest import TEST_LABELS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    def __init__(self, image: str, directory: Path) -> None:
        self.directory = directory
        self.credentials = {user: acl.Credential.new(user) for user in acl.SERVICES}
        for user, credential in self.credentials.items():
            self._file(user).write_text(credential.line())
            self._file(user).chmod(0o600)
        self.acl_file = directory / "redis_acl"
        self.acl_file.write_text(acl.acl_file(list(self.credentials.values())))
        self.acl_file.chmod(0o644)  # read by the container's entrypoint
        self.admin_file = self._file(acl.ADMIN)
        self.approval_file = self._file(acl.APPROVAL)
        self.worker_file = self._file(acl.WORKER)
        self.tls = TeamTLS(directory / "tls")
        self.tls.ensure(["127.0.0.1"], say=lambda _: None)
        self.tls.server_key.chmod(0o644)  # test files: read by the container's entrypoint
        self.tls.directory.chmod(0o755)
        self.ca_file = self.tls.ca
        self.port = free_port()
        self.url = f"rediss://127.0.0.1:{self.port}/0"
        self.container = (
            DockerContainer(image)
            .with_volume_mapping(str(self.acl_file), "/run/secrets/redis_acl", "ro")
            .with_volume_mapping(str(self.tls.server_cert), "/run/secrets/redis_tls_cert", "ro")
            .with_volume_mapping(str(self.tls.server_key), "/run/secrets/redis_tls_key", "ro")
            .with_volume_mapping(str(self.tls.ca), "/run/secrets/redis_ca", "ro")
            .with_kwargs(labels=TEST_LABELS)
            .waiting_for(HealthcheckWaitStrategy().with_startup_timeout(30))
        )
        # Loopback only, and the same host port after a restart (the URL must not change).
        self.container.ports["6379/tcp"] = ("127.0.0.1", self.port)

    def _file(self, user: str) -> Path:
        return self.directory / f"redis_{user}"

    def client(self, user: str = acl.ADMIN) -> redis.Redis:
        return connect(self.url, credential=self.credentials[user], ca_file=self.ca_file)

    def session_file(self, session_id: str) -> Path:
        """A session's credential file, its user made with the admin credential (as `run`)."""
        admin = self.client()
        try:
            credential = users.create_session_user(
                admin, session_id, project=f"ic-test-{session_id}", machine="test"
            )
        finally:
            admin.close()
        path = self.directory / f"session-{session_id}"
        path.write_text(credential.line())
        path.chmod(0o600)
        return path

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
