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


def _remove_stale(
    client: docker.DockerClient,
    networks: list[EngineNetwork],
    live: set[str],
    pool: tuple[IPv4Network, ...],
) -> tuple[list[EngineNetwork], list[str]]:
    """Remove the stale ones among `networks` (`leases.stale`); (removed, problems). The
    containers are listed only when some network could be stale: starts beside running
    sessions (every network leased) cost one engine call, the network listing."""
    if not stale(networks, set(), live, pool):
        return [], []
    busy = {
        c.labels.get(PROJECT_LABEL, "")
        for c in client.containers.list(all=True, filters={"label": PROJECT_LABEL})
    }
    removed: list[EngineNetwork] = []
    problems: list[str] = []
    for network in stale(networks, busy, live, pool):
        try:
            client.api.remove_network(network.id)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as exc:  # e.g. a container attached meanwhile
            problems.append(f"{network.name}: {exc.explanation or exc}")
            continue
        removed.append(network)
    return removed, problems


class Sweeper:
    """What `Leases.take` asks under its lock: stale session networks removed first, then every
    IPv4 subnet of every engine network still there. What it removed is kept for the caller."""

    def __init__(self, client: docker.DockerClient, pool: tuple[IPv4Network, ...]) -> None:
        self.client = client
        self.pool = pool
        self.removed: list[str] = []
        self.problems: list[str] = []

    def __call__(self, live: set[str]) -> list[IPv4Network]:
        networks = engine_networks(self.client)
        removed, problems = _remove_stale(self.client, networks, live, self.pool)
        self.removed += [n.name for n in removed]
        self.problems += problems
        gone = {n.id for n in removed}
        return [s for n in networks if n.id not in gone for s in n.subnets]


def engine_subnets(client: docker.DockerClient) -> Callable[[set[str]], list[IPv4Network]]:
    """Every IPv4 subnet of every engine network (no sweep)."""
    return lambda _live: [s for n in engine_networks(client) for s in n.subnets]


def sweep(client: docker.DockerClient, leases: Leases) -> tuple[list[str], list[str]]:
    """Remove the stale session networks, under the allocation lock (`ironcurtain down
    --stale`); (removed names, problems)."""
    with leases.held() as live:
        removed, problems = _remove_stale(client, engine_networks(client), live, leases.pool)
    return [n.name for n in removed], problems
