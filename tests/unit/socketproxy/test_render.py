"""The rendered haproxy.cfg: refusals come first, every rule is quoted, queries are literal."""

from __future__ import annotations

import pytest

from ironcurtain.socketproxy.render import render
from ironcurtain.socketproxy.settings import from_environ

ENV = {"CONTAINERS": "1", "VISIBLE_CONTAINERS": "web-1,db.main", "SOCKET_PATH": "/run/d.sock"}


@pytest.fixture
def config() -> str:
    return render(from_environ(ENV))


def _frontend(config: str) -> list[str]:
    lines = config.splitlines()
    start = lines.index("frontend docker")
    end = lines.index("", start)
    return [line.strip() for line in lines[start:end]]


def test_malformed_targets_are_refused_before_any_rule_is_consulted(config: str) -> None:
    rules = _frontend(config)
    first_rule = next(i for i, line in enumerate(rules) if "set-var(txn.rule)" in line)
    malformed = next(i for i, line in enumerate(rules) if "malformed request target" in line)
    assert malformed < first_rule
    for check in ("!{ url_beg / }", "{ path_sub // }", "{ path_sub /. }", "{ path_sub % }"):
        assert check in rules[malformed]


def test_anything_no_rule_classified_is_denied_before_a_backend_is_chosen(config: str) -> None:
    rules = _frontend(config)
    deny = next(
        i for i, line in enumerate(rules) if line.endswith("unless { var(txn.rule) -m found }")
    )
    assert all("set-var(txn.rule)" not in line for line in rules[deny:])
    assert all("use_backend" not in line for line in rules[:deny])


def test_each_pattern_is_strongly_quoted_and_anchored(config: str) -> None:
    classify = [line for line in _frontend(config) if "set-var(txn.rule)" in line]
    assert len(classify) == 9  # ping version events list inspect logs stats top byid
    for line in classify:
        assert "{ path_reg '^(/v1\\.[0-9]{1,2})?/" in line
        assert "$' }" in line


def test_our_filter_comes_first_in_the_query_as_a_literal(config: str) -> None:
    rewrites = [line for line in _frontend(config) if line.startswith("http-request set-query")]
    assert len(rewrites) == 2
    for line in rewrites:
        literal, _, rest = line.split('"')[1].partition("&%[query]")
        assert rest == ""
        assert "%[" not in literal
        assert literal.count("%") % 2 == 0


def test_a_full_id_is_resolved_by_the_engine_before_the_final_deny(config: str) -> None:
    rules = _frontend(config)
    resolve = next(i for i, line in enumerate(rules) if "lua.visible_id" in line)
    deny = next(i for i, line in enumerate(rules) if "unless { var(txn.rule) -m found }" in line)
    assert resolve < deny
    assert rules[resolve] == (
        "http-request lua.visible_id 'web-1,db.main' '/run/d.sock' if { var(txn.rule) -m str byid }"
    )


def test_every_backend_talks_to_the_configured_socket_only(config: str) -> None:
    servers = [line.strip() for line in config.splitlines() if line.strip().startswith("server ")]
    assert servers == ["server docker /run/d.sock"] * 3


def test_inspect_answers_are_buffered_stripped_and_refused_when_not_parsable(config: str) -> None:
    lines = config.splitlines()
    inspect = lines[lines.index("backend inspect") :]
    assert inspect[1].strip() == "http-response wait-for-body time 10s if { status 200 }"
    assert inspect[2].strip() == "http-response lua.inspect_reply if { status 200 }"


def test_health_endpoint_listens_on_loopback_only(config: str) -> None:
    assert "bind 127.0.0.1:8404" in config
    binds = [line.strip() for line in config.splitlines() if line.strip().startswith("bind ")]
    assert binds == ["bind 127.0.0.1:8404", "bind 0.0.0.0:2375"]
