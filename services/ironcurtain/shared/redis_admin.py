"""The host CLI's admin connection to this machine's team Redis.

Redis is published nowhere on a single machine: the host dials the Redis container's address on
the shared network and checks the certificate's name `redis` against the team CA. The admin
credential file stays on the host (mounted into no container but a team server's registrar).
"""

from __future__ import annotations

import docker
import redis

from ..escalation.channel import connect
from .files import SharedFiles

LOCAL_REDIS_URL = "rediss://redis:6379/0"  # the stack's Redis by its certificate's name


class RedisNotRunning(RuntimeError):
    """No Redis container of the shared stack on that network (or no engine to ask)."""


def redis_address(client: docker.DockerClient, network: str) -> str:
    """The IPv4 address of the shared stack's Redis container on `network`."""
    try:
        containers = client.networks.get(network).attrs.get("Containers", {}).values()
    except docker.errors.DockerException as exc:
        raise RedisNotRunning(f"no network {network}: {exc}") from None
    for container in containers:
        if container.get("Name", "").endswith("redis-1"):
            return str(container["IPv4Address"]).split("/")[0]
    raise RedisNotRunning(f"no redis container on {network}")


def admin_redis(files: SharedFiles, address: str) -> redis.Redis:
    """A client as the admin, dialling `address`, trusting the team CA alone."""
    return connect(LOCAL_REDIS_URL, files.redis_admin, ca_file=files.tls.ca, address=address)
