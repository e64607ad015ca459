"""Which addresses a session's networks take: small subnets from a pool IronCurtain owns. Pure.

Docker's default address pools hold about 31 networks, and a session has three, so one engine
ran at most about nine sessions at once (issue 22). Each session network instead takes one /28
(16 addresses: network, broadcast, the gateway IPAM reserves, 13 for containers; a session
network holds two or three) from `DEFAULT_POOL` or `IRONCURTAIN_SUBNET_POOL`: a /16 is 4096 of
them, 1365 sessions. What is taken (the engine's networks, the host's routes, sessions that are
starting) is the caller's to gather (`leases.py`); here only the arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Network, ip_network

DEFAULT_POOL = "10.213.0.0/16"
PREFIX = 28
POOL_VARIABLE = "IRONCURTAIN_SUBNET_POOL"


class PoolError(ValueError):
    """The pool setting is not a list of private IPv4 ranges that can hold a session subnet."""


class Exhausted(RuntimeError):
    """No free subnet is left in the pool: the session is refused before anything starts."""


def parse_pool(text: str, prefix: int = PREFIX) -> tuple[IPv4Network, ...]:
    """`CIDR[,CIDR...]`: private IPv4 ranges, each at least one /`prefix`, none overlapping."""
    blocks: list[IPv4Network] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            block = ip_network(part, strict=True)
        except ValueError as exc:
            raise PoolError(f"{POOL_VARIABLE}: {part!r} is not a network ({exc})") from None
        if not isinstance(block, IPv4Network):
            raise PoolError(f"{POOL_VARIABLE}: {part} is not IPv4 (session networks are IPv4)")
        if not block.is_private or block.is_loopback or block.is_link_local:
            raise PoolError(f"{POOL_VARIABLE}: {part} is not a private range")
        if block.prefixlen > prefix:
            raise PoolError(f"{POOL_VARIABLE}: {part} is smaller than one /{prefix}")
        for other in blocks:
            if block.overlaps(other):
                raise PoolError(f"{POOL_VARIABLE}: {part} overlaps {other}")
        blocks.append(block)
    if not blocks:
        raise PoolError(f"{POOL_VARIABLE}: no range given")
    return tuple(blocks)


def in_pool(subnet: IPv4Network, pool: Iterable[IPv4Network]) -> bool:
    return any(subnet.subnet_of(block) for block in pool)


def allocate(
    pool: Iterable[IPv4Network],
    taken: Iterable[IPv4Network],
    count: int,
    prefix: int = PREFIX,
) -> tuple[IPv4Network, ...]:
    """The first `count` /`prefix` subnets of `pool` that overlap nothing in `taken` nor each
    other, lowest first; `Exhausted` (saying how many were free) when there are fewer."""
    blocks = tuple(pool)
    size = 1 << (32 - prefix)
    ranges = sorted((int(t.network_address), int(t.broadcast_address)) for t in taken)
    found: list[IPv4Network] = []
    for block in blocks:
        address, end = int(block.network_address), int(block.broadcast_address)
        while len(found) < count and address + size - 1 <= end:
            last = address + size - 1
            clash = next((r for r in ranges if r[0] <= last and r[1] >= address), None)
            if clash is not None:  # skip past it, to the next aligned candidate
                address = -(-(clash[1] + 1) // size) * size
                continue
            found.append(IPv4Network((address, prefix)))
            address += size
    if len(found) < count:
        ranges_text = ", ".join(str(b) for b in blocks)
        raise Exhausted(
            f"no {count} free /{prefix} subnets left in the session address pool {ranges_text} "
            f"({len(found)} free; the rest overlap the engine's networks, the host's routes or "
            f"sessions starting): stop sessions (`ironcurtain sessions`, `ironcurtain down`), "
            f"or give {POOL_VARIABLE} a larger or another private range"
        )
    return tuple(found)
