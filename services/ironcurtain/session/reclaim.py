"""The engine's side of the address pool: the subnets its networks hold, and the removal of
session networks a crashed session left behind (so their subnets return to the pool)."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Network

import docker
import docker.errors

from .leases import PROJECT_LABEL, EngineNetwork, Leases, parse_networks, stale


def engine_networks(client: docker.DockerClient) -> list[EngineNetwork]:
    return parse_networks(client.api.networks())


def engine_subnets(client: docker.DockerClient) -> Callable[[], list[IPv4Network]]:
    """What `Leases` asks for each allocation: every IPv4 subnet of every engine network."""
    return lambda: [s for n in engine_networks(client) for s in n.subnets]


def sweep(client: docker.DockerClient, leases: Leases) -> tuple[list[str], list[str]]:
    """Remove the stale session networks (`leases.stale`), under the allocation lock so no
    start leases or creates meanwhile; (removed names, problems)."""
    removed: list[str] = []
    problems: list[str] = []
    with leases.held() as live:
        networks = engine_networks(client)
        busy = {
            c.labels.get(PROJECT_LABEL, "")
            for c in client.containers.list(all=True, filters={"label": PROJECT_LABEL})
        }
        for network in stale(networks, busy, live, leases.pool):
            try:
                client.api.remove_network(network.id)
            except docker.errors.NotFound:
                continue
            except docker.errors.APIError as exc:  # e.g. a container attached meanwhile
                problems.append(f"{network.name}: {exc.explanation or exc}")
                continue
            removed.append(network.name)
    return removed, problems
