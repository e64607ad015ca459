"""Approve-and-remember scopes: what a remembered approval covers, as tables (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.escalation.remember import (
    Scope,
    arguments_digest,
    choices,
    narrowest_directory,
    pick,
)

KEY = b"k" * 32
ARGS = {"path": "/work/src/a.py", "content": "x"}
RAW = arguments_digest(ARGS, KEY)
PREFIX = Scope("prefix", "/work/src", "fs", "write_file")
DOMAIN = Scope("domain", "example.org", "web", "fetch")
EXACT = Scope("exact", RAW, "fs", "write_file")


@pytest.mark.parametrize(
    ("scope", "server", "tool", "raw", "paths", "domains"),
    [
        (PREFIX, "fs", "write_file", "", ["/work/src/a.py"], []),
        (PREFIX, "fs", "write_file", "", ["/work/src/deep/b.py", "/work/src/c"], []),
        (PREFIX, "fs", "write_file", "", ["/work/src"], []),
        (DOMAIN, "web", "fetch", "", [], ["example.org"]),
        (DOMAIN, "web", "fetch", "", [], ["EXAMPLE.org."]),
        (EXACT, "fs", "write_file", arguments_digest(dict(reversed(ARGS.items())), KEY), [], []),
    ],
)
def test_a_remembered_scope_covers_similar_calls(scope, server, tool, raw, paths, domains):
    assert scope.covers(server, tool, raw, paths, domains)


@pytest.mark.parametrize(
    ("scope", "server", "tool", "raw", "paths", "domains"),
    [
        (PREFIX, "fs", "delete_file", "", ["/work/src/a.py"], []),  # another tool
        (PREFIX, "other", "write_file", "", ["/work/src/a.py"], []),  # another server
        (PREFIX, "fs", "write_file", "", ["/work/srcevil/a.py"], []),  # a sibling, same prefix
        (PREFIX, "fs", "write_file", "", ["/work/src/../etc/passwd"], []),  # unnormalised
        (PREFIX, "fs", "write_file", "", ["work/src/a.py"], []),  # relative
        (PREFIX, "fs", "write_file", "", ["/work/src/a.py", "/etc/passwd"], []),  # one outside
        (PREFIX, "fs", "write_file", "", [], []),  # no paths at all
        (DOMAIN, "web", "fetch", "", [], ["evil.example.org"]),  # a subdomain
        (DOMAIN, "web", "fetch", "", [], ["example.org", "evil.com"]),  # one other domain
        (DOMAIN, "web", "fetch", "", [], []),  # no domain at all
        (EXACT, "fs", "write_file", arguments_digest({**ARGS, "content": "y"}, KEY), [], []),
        (EXACT, "fs", "write_file", "", [], []),  # no raw digest: never "exactly this"
        (EXACT, "fs", "write_file", arguments_digest(ARGS, b"other key"), [], []),
        # Planted scopes that cover the workspace or more are never honoured.
        (Scope("prefix", "/workspace", "fs", "move_file"), "fs", "move_file", "",
         ["/workspace/a"], []),
        (Scope("prefix", "/workspace/", "fs", "move_file"), "fs", "move_file", "",
         ["/workspace/a"], []),
        (Scope("prefix", "/", "fs", "move_file"), "fs", "move_file", "", ["/workspace/a"], []),
    ],
)  # fmt: skip
def test_a_remembered_scope_does_not_cover_anything_else(scope, server, tool, raw, paths, domains):
    assert not scope.covers(server, tool, raw, paths, domains)


def test_exactly_this_call_is_keyed_on_the_raw_arguments_not_the_redacted_ones():
    # Two calls that redact to the same shown text: approving one never covers the other.
    one = arguments_digest({"url": "https://x.test/?token=aaa"}, KEY)
    other = arguments_digest({"url": "https://x.test/?token=bbb"}, KEY)
    shown = {"url": "https://x.test/?token=[REDACTED]"}
    offered = choices("web", "fetch", shown, [], ["x.test"], one)
    exact = next(s for s in offered if s.kind == "exact")
    assert exact.covers("web", "fetch", one, [], [])
    assert not exact.covers("web", "fetch", other, [], [])


def test_choices_offer_the_narrowest_directory_the_domains_and_exactly_this_call():
    offered = choices("fs", "write_file", ARGS, ["/work/src/a.py"], ["Example.org"], RAW)
    assert [(s.kind, s.value) for s in offered] == [
        ("prefix", "/work/src"),
        ("domain", "example.org"),
        ("exact", RAW),
    ]


@pytest.mark.parametrize(
    ("paths", "offered"),
    [
        (["/workspace/src/a.py"], "/workspace/src"),
        (["/workspace/src/a/x.py", "/workspace/src/b/y.py"], "/workspace/src"),  # a move
        (["/workspace/a.py"], None),  # its directory is the workspace itself
        (["/workspace/src/a.py", "/workspace/b.py"], None),  # a move across the root
        (["/workspace/src/a.py", "/etc/x"], None),  # the common directory is /
        (["/b.py"], None),
        (["/work/src/a.py", "relative"], None),
        ([], None),
    ],
)
def test_the_directory_offered_is_the_narrowest_and_never_the_workspace_root(paths, offered):
    assert narrowest_directory(paths) == offered


def test_only_an_offered_scope_can_be_picked():
    offered = choices("fs", "write_file", ARGS, ["/work/src/a.py"], [], RAW)
    assert pick(offered, offered[0].id) == offered[0]
    with pytest.raises(ValueError, match="not offered"):
        pick(offered, Scope("prefix", "/", "fs", "write_file").id)


@given(st.binary())
def test_parsing_a_scope_from_any_bytes_is_a_scope_or_a_value_error(data):
    try:
        scope = Scope.from_json(data)
    except (ValueError, UnicodeDecodeError):
        return
    assert scope.kind in ("prefix", "domain", "exact")
