"""The rendered haproxy.cfg: refusals come first, every rule is quoted, queries are literal."""

from __future__ import annotations

import pytest

from ironcurtain.socketproxy.render import MAX_URL, render
from ironcurtain.socketproxy.rules import ApiRange
from ironcurtain.socketproxy.settings import from_environ

ENV = {"CONTAINERS": "1", "VISIBLE_CONTAINERS": "web-1,db.main", "SOCKET_PATH": "/run/d.sock"}


@pytest.fixture
def config() -> str:
    return render(from_environ(ENV), ApiRange((1, 12), (1, 41)))


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
        assert "{ path_reg '^(/v1\\.(25|26|" in line
        assert "|41))?/" in line
        assert "$' }" in line


def test_a_long_target_is_answered_414_before_anything_else(config: str) -> None:
    rules = _frontend(config)
    first = next(i for i, line in enumerate(rules) if line.startswith("http-request"))
    assert rules[first].startswith("http-request deny deny_status 414 ")
    assert rules[first].endswith(f"if {{ url,length gt {MAX_URL} }}")


def test_every_classified_rule_has_its_query_checked_and_unchecked_ones_are_denied(
    config: str,
) -> None:
    rules = _frontend(config)
    named = [line.split("str(")[1].split(")")[0] for line in rules if "set-var(txn.rule)" in line]
    checked = [
        line.rsplit(" ", 2)[-2] for line in rules if line.startswith("http-request lua.query")
    ]
    assert sorted(checked) == sorted(n for n in named if n != "byid")
    refusal = next(i for i, line in enumerate(rules) if "var(txn.refusal) -m found" in line)
    unchecked = next(i for i, line in enumerate(rules) if "var(txn.checked) -m found" in line)
    last_check = max(i for i, line in enumerate(rules) if "lua.query" in line)
    backend = next(i for i, line in enumerate(rules) if line.startswith("use_backend"))
    assert last_check < refusal < unchecked < backend
    assert "set-query" not in config  # the raw query is never forwarded, not even in part


def test_the_query_check_gets_the_rules_allowlist_as_literals(config: str) -> None:
    top = next(line for line in _frontend(config) if line.endswith("-m str top }"))
    assert top == (
        "http-request lua.query '-' '-' 'web-1,db.main' '/run/d.sock' "
        "if { var(txn.rule) -m str top }"
    )
    listing = next(line for line in _frontend(config) if line.endswith("-m str list }"))
    assert "'name=@exact'" in listing


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
