"""A session's Redis budget as arithmetic: what counts, sizes replaced not added, the limits."""

from __future__ import annotations

import pytest

from ironcurtain.escalation import redis_keys
from ironcurtain.escalation.budget import (
    MIB,
    Breach,
    Footprint,
    Limits,
    connections,
    connections_breach,
    counted,
)

A, B = "a1b2c3d4", "e5f6a7b8"


def key(what: str, session: str = A) -> bytes:
    return (redis_keys.space(session) + what).encode()


@pytest.mark.parametrize(
    ("found", "counts"),
    [
        (key("record:a1b2c3d4.0123456789abcdef"), True),
        (key("record:anything the session chose"), True),
        (key("pending"), True),
        (key("pendingx"), False),  # no such key of the session's (its ACL: exactly `pending`)
        (key("wake:a1b2c3d4.0123456789abcdef"), True),
        # Written by trusted services, one per record at most: not the session's to grow.
        (key("decision:a1b2c3d4.0123456789abcdef"), False),
        (key("handled:a1b2c3d4.0123456789abcdef"), False),
        (key("review:a1b2c3d4.0123456789abcdef"), False),
        (key("remember"), False),
        (key("info"), False),
        (key("autoreview"), False),
        # Another session's keys, or none of ours, never count against this one.
        (key("record:x", B), False),
        (key("pending", B), False),
        (redis_keys.INBOX.encode(), False),
        (b"ironcurtain:esc:s:a1b2c3d4x:record:y", False),  # a longer id, same start
        (b"", False),
    ],
)
def test_what_counts_against_a_sessions_budget(found: bytes, counts: bool) -> None:
    assert counted(A, found) is counts


def test_a_measurement_replaces_the_keys_size_and_a_gone_key_frees_it() -> None:
    footprint = Footprint(Limits(keys=10, bytes=MIB))
    assert footprint.measured(key("record:1"), 100) is None
    assert footprint.measured(key("record:1"), 300) is None  # rewritten: 300, not 400
    assert footprint.measured(key("pending"), 50) is None
    assert (footprint.keys, footprint.total) == (2, 350)
    assert footprint.measured(key("record:1"), None) is None  # deleted or expired
    assert footprint.measured(key("record:never-seen"), None) is None
    assert (footprint.keys, footprint.total) == (1, 50)


def test_one_key_too_many_is_a_breach_naming_the_key_limit() -> None:
    footprint = Footprint(Limits(keys=3, bytes=MIB))
    for n in range(3):
        assert footprint.measured(key(f"record:{n}"), 10) is None
    breach = footprint.measured(key("record:3"), 10)
    assert breach == Breach("keys", 4, 3)
    assert breach.describe() == "4 keys, more than its 3"


def test_one_byte_too_many_is_a_breach_naming_the_byte_limit() -> None:
    footprint = Footprint(Limits(keys=100, bytes=2 * MIB))
    assert footprint.measured(key("record:1"), 2 * MIB) is None  # exactly the limit
    breach = footprint.measured(key("pending"), 1)
    assert breach is not None
    assert breach.limit == "bytes"
    assert breach.describe() == "2 MiB, more than its 2 MiB"
    assert Breach("bytes", 3 * MIB + MIB // 2, 2 * MIB).describe() == (
        "3.5 MiB, more than its 2 MiB"
    )


def test_a_breach_stands_until_the_keys_are_gone() -> None:
    footprint = Footprint(Limits(keys=1, bytes=MIB))
    footprint.measured(key("record:1"), 1)
    assert footprint.measured(key("record:2"), 1) is not None
    assert footprint.breach() is not None
    assert footprint.measured(key("record:2"), None) is None


def test_forgetting_is_for_a_redis_that_lost_everything() -> None:
    footprint = Footprint(Limits())
    footprint.measured(key("record:1"), 1000)
    footprint.forget()
    assert (footprint.keys, footprint.total) == (0, 0)


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Footprint(Limits()).measured(key("record:1"), -1)


def test_the_limits_default_and_come_from_the_environment() -> None:
    assert Limits.from_environ({}) == Limits(2000, 16 * MIB)
    found = Limits.from_environ(
        {"IRONCURTAIN_REDIS_BUDGET_KEYS": "500", "IRONCURTAIN_REDIS_BUDGET_MIB": " 64 "}
    )
    assert found == Limits(500, 64 * MIB)
    assert found.describe() == "500 keys, 64 MiB; 100 connections, 32 MiB in their buffers"


@pytest.mark.parametrize(
    "environ",
    [
        {"IRONCURTAIN_REDIS_BUDGET_KEYS": "-1"},
        {"IRONCURTAIN_REDIS_BUDGET_KEYS": "1e9"},
        {"IRONCURTAIN_REDIS_BUDGET_KEYS": "0"},
        {"IRONCURTAIN_REDIS_BUDGET_MIB": "0"},
        {"IRONCURTAIN_REDIS_BUDGET_MIB": "lots"},
        {"IRONCURTAIN_REDIS_BUDGET_MIB": "9" * 20},
    ],
)
def test_a_limit_that_is_no_whole_positive_number_is_refused(environ: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"whole number|at least"):
        Limits.from_environ(environ)


USER = "ironcurtain-session-a1b2c3d4"


def test_only_the_sessions_own_connections_count_with_their_memory() -> None:
    listing = [
        {"id": "1", "user": USER, "tot-mem": "20000"},
        {"id": "2", "user": USER, "tot-mem": "4200000"},
        {"id": "3", "user": "ironcurtain-session-e5f6a7b8", "tot-mem": "9999999"},
        {"id": "4", "user": f"{USER}x", "tot-mem": "9999999"},  # a longer name, same start
        {"id": "5", "user": "ironcurtain-approval", "tot-mem": "9999999"},
        {"id": "6", "user": USER},  # no memory field: counted, 0 bytes
        {"id": "7", "user": USER, "tot-mem": "-5"},  # nothing to add up
    ]
    assert connections(listing, USER) == (4, 4_220_000)
    assert connections([], USER) == (0, 0)


@pytest.mark.parametrize(
    ("count", "memory", "breach"),
    [
        (100, 32 * MIB, None),
        (101, 0, Breach("connections", 101, 100)),
        (3, 32 * MIB + 1, Breach("connection bytes", 32 * MIB + 1, 32 * MIB)),
    ],
)
def test_too_many_connections_or_too_much_in_their_buffers_is_a_breach(
    count: int, memory: int, breach: Breach | None
) -> None:
    assert connections_breach(Limits(), count, memory) == breach


def test_a_connection_breach_names_what_was_over() -> None:
    assert Breach("connections", 101, 100).describe() == "101 connections, more than its 100"
    assert Breach("connection bytes", 33 * MIB, 32 * MIB).describe() == (
        "33 MiB in its connections' buffers, more than its 32 MiB"
    )
