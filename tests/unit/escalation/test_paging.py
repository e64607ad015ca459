"""Pages of the pending list: the query allowlist, cursors, and the merge that keeps every entry
reachable exactly once."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.escalation.paging import (
    MAX_LIMIT,
    BadParameter,
    Cursor,
    Order,
    PageQuery,
    merge,
)


def test_the_defaults_are_a_bounded_page_latest_deadline_first() -> None:
    query = PageQuery.parse({})
    assert (query.limit, query.order, query.cursor) == (50, Order.LATEST, None)


def test_a_cursor_round_trips() -> None:
    cursor = Cursor(1764748800.123456, "s1.0123456789abcdef")
    assert Cursor.decode(cursor.encode()) == cursor
    query = PageQuery.parse({"cursor": cursor.encode(), "order": "soonest", "limit": "7"})
    assert (query.cursor, query.order, query.limit) == (cursor, Order.SOONEST, 7)


@pytest.mark.parametrize(
    ("args", "parameter"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": str(MAX_LIMIT + 1)}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "1e3"}, "limit"),
        ({"order": "random"}, "order"),
        ({"cursor": "nan~s1.0123456789abcdef"}, "cursor"),
        ({"cursor": "inf~s1.0123456789abcdef"}, "cursor"),
        ({"cursor": "1.5~not an id"}, "cursor"),
        ({"cursor": "1.5~a*b"}, "cursor"),
        ({"cursor": "1.5"}, "cursor"),
        ({"session": "s*"}, "session"),
        ({"session": "a:b"}, "session"),
        ({"worktree": "a\x1b[2J"}, "worktree"),
        ({"page": "2"}, "page"),
        ({"callback": "x"}, "callback"),
    ],
)
def test_a_bad_or_unknown_parameter_is_refused_naming_it(
    args: dict[str, str], parameter: str
) -> None:
    with pytest.raises(BadParameter) as raised:
        PageQuery.parse(args)
    assert raised.value.parameter == parameter
    assert str(raised.value).startswith(parameter)


def test_a_repeated_parameter_is_refused() -> None:
    with pytest.raises(BadParameter, match="more than once"):
        PageQuery.parse([("limit", "5"), ("limit", "500")])


def walk(runs: list[list[Cursor]], order: Order, limit: int) -> list[Cursor]:
    """Every page, one after another, as a client following `next` does."""
    latest = order is Order.LATEST
    ordered = [sorted(r, reverse=latest) for r in runs]
    seen: list[Cursor] = []
    cursor = None
    while True:
        merged = merge(ordered, cursor, order, limit + 1)
        page = merged[:limit]
        seen += page
        if len(merged) <= limit:
            return seen
        cursor = page[-1]


@given(
    st.lists(
        st.lists(st.integers(0, 20), max_size=30), min_size=1, max_size=6
    ),  # deadlines per session, ties included
    st.integers(1, 7),
    st.sampled_from(list(Order)),
)
def test_following_next_reaches_every_entry_once_in_order(
    sessions: list[list[int]], limit: int, order: Order
) -> None:
    runs = [
        [Cursor(float(d), f"s{n}.{i:016x}") for i, d in enumerate(deadlines)]
        for n, deadlines in enumerate(sessions)
    ]
    everything = sorted((c for r in runs for c in r), reverse=order is Order.LATEST)
    assert walk(runs, order, limit) == everything


def test_ten_thousand_entries_are_each_reachable() -> None:
    rng = random.Random(15)
    runs = [
        [Cursor(rng.uniform(0, 600), f"s{n}.{i:016x}") for i in range(10_000 // 7 + 1)]
        for n in range(7)
    ]
    found = walk(runs, Order.SOONEST, 200)
    assert len(found) == len(set(found)) == sum(len(r) for r in runs)
    assert found == sorted(found)
