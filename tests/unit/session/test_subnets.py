"""The session address pool's arithmetic: subnets that overlap nothing taken nor each other,
lowest first; exhaustion refused with a message; pool settings checked."""

from __future__ import annotations

from ipaddress import IPv4Network, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.session.subnets import (
    DEFAULT_POOL,
    Exhausted,
    PoolError,
    allocate,
    in_pool,
    parse_pool,
)

POOL = parse_pool(DEFAULT_POOL)


def nets(*texts: str) -> list[IPv4Network]:
    return [IPv4Network(t) for t in texts]


def test_an_empty_engine_gets_the_lowest_subnets_of_the_pool() -> None:
    assert allocate(POOL, [], 3) == tuple(nets("10.213.0.0/28", "10.213.0.16/28", "10.213.0.32/28"))


def test_a_subnet_taken_by_an_engine_network_is_skipped() -> None:
    got = allocate(POOL, nets("10.213.0.16/28"), 2)
    assert got == tuple(nets("10.213.0.0/28", "10.213.0.32/28"))


def test_a_larger_network_inside_the_pool_is_skipped_whole() -> None:
    got = allocate(POOL, nets("10.213.0.0/20"), 1)
    assert got == tuple(nets("10.213.16.0/28"))


def test_a_network_covering_the_whole_pool_leaves_nothing() -> None:
    with pytest.raises(Exhausted, match=r"10\.213\.0\.0/16 \(0 free"):
        allocate(POOL, nets("10.0.0.0/8"), 1)


def test_exhaustion_is_refused_saying_what_to_do() -> None:
    small = parse_pool("10.99.0.0/27")  # two /28s
    with pytest.raises(Exhausted) as caught:
        allocate(small, [], 3)
    message = str(caught.value)
    assert "10.99.0.0/27" in message
    assert "2 free" in message
    assert "IRONCURTAIN_SUBNET_POOL" in message
    assert "ironcurtain down" in message


def test_several_ranges_are_used_in_order() -> None:
    pool = parse_pool("10.99.0.0/28, 10.98.0.0/28")
    assert allocate(pool, [], 2) == tuple(nets("10.99.0.0/28", "10.98.0.0/28"))


def test_freed_subnets_are_handed_out_again() -> None:
    first = allocate(POOL, [], 3)
    second = allocate(POOL, first, 3)
    assert set(first).isdisjoint(second)
    again = allocate(POOL, second, 3)  # the first session was torn down
    assert again == first


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "no range"),
        ("10.1.0.0/33", "not a network"),
        ("10.1.0.1/16", "not a network"),  # host bits set
        ("fd00::/64", "not IPv4"),
        ("8.8.0.0/16", "not a private range"),
        ("127.0.0.0/8", "not a private range"),
        ("169.254.0.0/16", "not a private range"),
        ("10.1.0.0/29", "smaller than one /28"),
        ("10.1.0.0/16,10.1.4.0/24", "overlaps"),
    ],
)
def test_bad_pools_are_refused(text: str, complaint: str) -> None:
    with pytest.raises(PoolError, match=complaint):
        parse_pool(text)


def test_in_pool() -> None:
    assert in_pool(IPv4Network("10.213.7.16/28"), POOL)
    assert not in_pool(IPv4Network("172.17.0.0/16"), POOL)
    assert not in_pool(IPv4Network("10.0.0.0/8"), POOL)  # overlaps, but is not inside


taken_nets = st.builds(
    lambda a, p: ip_network((a, p), strict=False),
    st.integers(min_value=int(IPv4Network("10.212.0.0/16").network_address), max_value=0x0AD6FFFF),
    st.integers(min_value=20, max_value=30),
)


@given(st.lists(taken_nets, max_size=40), st.integers(min_value=1, max_value=6))
def test_allocations_never_overlap_what_is_taken_or_each_other(
    taken: list[IPv4Network], count: int
) -> None:
    pool = parse_pool("10.213.0.0/22")
    try:
        got = allocate(pool, taken, count)
    except Exhausted:
        return
    assert len(got) == count
    for i, subnet in enumerate(got):
        assert subnet.prefixlen == 28
        assert in_pool(subnet, pool)
        assert not any(subnet.overlaps(t) for t in taken)
        assert not any(subnet.overlaps(o) for o in got[i + 1 :])
