"""Approve-and-remember scopes: what a remembered approval covers, as tables (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.escalation.remember import Scope, arguments_digest, choices, pick

ARGS = {"path": "/work/src/a.py", "content": "x"}
PREFIX = Scope("prefix", "/work/src", "fs", "write_file")
DOMAIN = Scope("domain", "example.org", "web", "fetch")
EXACT = Scope("exact", arguments_digest(ARGS), "fs", "write_file")


@pytest.mark.parametrize(
    ("scope", "server", "tool", "arguments", "paths", "domains"),
    [
        (PREFIX, "fs", "write_file", {}, ["/work/src/a.py"], []),
        (PREFIX, "fs", "write_file", {}, ["/work/src/deep/b.py", "/work/src/c"], []),
        (PREFIX, "fs", "write_file", {}, ["/work/src"], []),
        (DOMAIN, "web", "fetch", {}, [], ["example.org"]),
        (DOMAIN, "web", "fetch", {}, [], ["EXAMPLE.org."]),
        (EXACT, "fs", "write_file", dict(reversed(ARGS.items())), [], []),
    ],
)
def test_a_remembered_scope_covers_similar_calls(scope, server, tool, arguments, paths, domains):
    assert scope.covers(server, tool, arguments, paths, domains)


@pytest.mark.parametrize(
    ("scope", "server", "tool", "arguments", "paths", "domains"),
    [
        (PREFIX, "fs", "delete_file", {}, ["/work/src/a.py"], []),  # another tool
        (PREFIX, "other", "write_file", {}, ["/work/src/a.py"], []),  # another server
        (PREFIX, "fs", "write_file", {}, ["/work/srcevil/a.py"], []),  # a sibling, same prefix
        (PREFIX, "fs", "write_file", {}, ["/work/src/../etc/passwd"], []),  # unnormalised
        (PREFIX, "fs", "write_file", {}, ["work/src/a.py"], []),  # relative
        (PREFIX, "fs", "write_file", {}, ["/work/src/a.py", "/etc/passwd"], []),  # one outside
        (PREFIX, "fs", "write_file", {}, [], []),  # no paths at all
        (DOMAIN, "web", "fetch", {}, [], ["evil.example.org"]),  # a subdomain
        (DOMAIN, "web", "fetch", {}, [], ["example.org", "evil.com"]),  # one other domain
        (DOMAIN, "web", "fetch", {}, [], []),  # no domain at all
        (EXACT, "fs", "write_file", {**ARGS, "content": "y"}, [], []),  # other arguments
    ],
)
def test_a_remembered_scope_does_not_cover_anything_else(
    scope, server, tool, arguments, paths, domains
):
    assert not scope.covers(server, tool, arguments, paths, domains)


def test_choices_offer_the_directories_the_domains_and_exactly_this_call():
    offered = choices("fs", "write_file", ARGS, ["/work/src/a.py", "/b.py"], ["Example.org"])
    assert [(s.kind, s.value) for s in offered] == [
        ("prefix", "/work/src"),  # "/" (the whole filesystem) is never offered
        ("domain", "example.org"),
        ("exact", arguments_digest(ARGS)),
    ]


def test_only_an_offered_scope_can_be_picked():
    offered = choices("fs", "write_file", ARGS, ["/work/src/a.py"], [])
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
