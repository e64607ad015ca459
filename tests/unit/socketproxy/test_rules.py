"""The allowlist as tables: what each switch serves, and every variant that must be refused."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.socketproxy.rules import (
    Backend,
    build,
    container_list_query,
    decide,
    events_query,
)
from ironcurtain.socketproxy.settings import from_environ

READS = {"CONTAINERS": "1", "IMAGES": "1", "INFO": "1", "NETWORKS": "1", "VOLUMES": "1"}
VISIBLE = {"VISIBLE_CONTAINERS": "web-1,db.main"}
EVERYTHING = {
    **READS,
    **VISIBLE,
    "POST": "1",
    "ALLOW_START": "1",
    "ALLOW_STOP": "1",
    "ALLOW_RESTARTS": "1",
}

ALLOWED = [
    ("HEAD", "/_ping", "ping"),
    ("GET", "/_ping", "ping"),
    ("GET", "/v1.41/_ping", "ping"),
    ("GET", "/version", "version"),
    ("GET", "/v1.24/version", "version"),
    ("GET", "/v1.41/info", "info"),
    ("GET", "/v1.41/events", "events"),
    ("GET", "/v1.41/images/json", "images"),
    ("GET", "/v1.41/networks", "networks"),
    ("GET", "/v1.41/volumes", "volumes"),
    ("GET", "/v1.41/containers/json", "list"),
    ("GET", "/containers/web-1/json", "inspect"),
    ("GET", "/v1.41/containers/db.main/json", "inspect"),
    ("GET", "/v1.41/containers/web-1/logs", "logs"),
    ("GET", "/v1.41/containers/web-1/stats", "stats"),
    ("GET", "/v1.41/containers/db.main/top", "top"),
    ("POST", "/v1.41/containers/web-1/start", "start"),
    ("POST", "/v1.41/containers/web-1/stop", "stop"),
    ("POST", "/v1.41/containers/web-1/restart", "restart"),
    ("POST", "/v1.41/containers/db.main/kill", "restart"),
]

REFUSED = [
    # never served, whatever the switches say
    ("GET", "/v1.41/containers/web-1/archive"),
    ("HEAD", "/v1.41/containers/web-1/archive"),
    ("PUT", "/v1.41/containers/web-1/archive"),
    ("GET", "/v1.41/containers/web-1/export"),
    ("POST", "/v1.41/containers/web-1/attach"),
    ("GET", "/v1.41/containers/web-1/attach/ws"),
    ("GET", "/v1.41/containers/web-1/changes"),
    ("POST", "/v1.41/containers/web-1/exec"),
    ("POST", "/v1.41/exec/abc/start"),
    ("POST", "/v1.41/containers/create"),
    ("DELETE", "/v1.41/containers/web-1"),
    ("POST", "/v1.41/containers/web-1/update"),
    ("POST", "/v1.41/containers/web-1/rename"),
    ("POST", "/v1.41/containers/web-1/pause"),
    ("POST", "/v1.41/containers/prune"),
    ("POST", "/v1.41/build"),
    ("POST", "/v1.41/commit"),
    ("POST", "/v1.41/auth"),
    ("GET", "/v1.41/images/ironcurtain/python/json"),
    ("GET", "/v1.41/images/ironcurtain/python/get"),
    ("GET", "/v1.41/images/get"),
    ("GET", "/v1.41/images/abc/history"),
    ("POST", "/v1.41/images/create"),
    ("GET", "/v1.41/networks/bridge"),
    ("POST", "/v1.41/networks/create"),
    ("GET", "/v1.41/volumes/data"),
    ("GET", "/v1.41/system/df"),
    ("GET", "/v1.41/secrets"),
    ("GET", "/v1.41/services"),
    ("GET", "/v1.41/swarm"),
    ("GET", "/v1.41/session"),
    ("GET", "/v1.41/grpc"),
    ("GET", "/v1.41/distribution/x/json"),
    # containers not declared visible, IDs, prefixes of names
    ("GET", "/v1.41/containers/hidden/json"),
    ("GET", "/v1.41/containers/hidden/logs"),
    ("GET", "/v1.41/containers/" + "a" * 63 + "/json"),
    ("GET", "/v1.41/containers/" + "a" * 65 + "/json"),
    ("GET", "/v1.41/containers/" + "A" * 64 + "/json"),
    ("GET", "/v1.41/containers/" + "a" * 64 + "/archive"),
    ("GET", "/v1.41/containers/" + "a" * 64 + "/export"),
    ("POST", "/v1.41/containers/" + "a" * 64 + "/start"),
    ("GET", "/v1.41/containers/web/json"),
    ("GET", "/v1.41/containers/web-10/json"),
    ("GET", "/v1.41/containers/dbXmain/json"),  # the '.' is literal, not any character
    ("GET", "/v1.41/containers/web-1-x/json"),
    ("POST", "/v1.41/containers/hidden/start"),
    ("POST", "/v1.41/containers/hidden/kill"),
    # path variants
    ("get", "/v1.41/containers/web-1/json"),
    ("Get", "/_ping"),
    ("GET", "//containers/web-1/json"),
    ("GET", "/v1.41//containers/web-1/json"),
    ("GET", "/v1.41/containers//web-1/json"),
    ("GET", "/v1.41/containers/web-1//json"),
    ("GET", "/v1.41/containers/web-1/json/"),
    ("GET", "/v1.41/containers/hidden/../web-1/json"),
    ("GET", "/v1.41/containers/web-1/../hidden/json"),
    ("GET", "/v1.41/containers/./web-1/json"),
    ("GET", "/v1.41/containers/web-1%2Fjson"),
    ("GET", "/v1.41/containers/web%2D1/json"),
    ("GET", "/v1.41/containers/%77eb-1/json"),
    ("GET", "/v1.41%2Fcontainers/web-1/json"),
    ("GET", "/V1.41/containers/web-1/json"),
    ("GET", "/v1.41/Containers/web-1/json"),
    ("GET", "/v1.41/containers/WEB-1/json"),
    ("GET", "/v1.41/v1.41/containers/web-1/json"),
    ("GET", "/v1/containers/web-1/json"),
    ("GET", "/v1.411/containers/web-1/json"),
    ("GET", "/v2.0/containers/web-1/json"),
    ("GET", "/vx/containers/web-1/json"),
    ("GET", "/v1.41/containers/web-1/json\n"),
    ("GET", "/v1.41/containers/web-1/json;x"),
    ("GET", "http://docker/v1.41/containers/web-1/json"),
    ("GET", "containers/web-1/json"),
    ("GET", ""),
    # reads on write endpoints and writes on read endpoints
    ("POST", "/v1.41/containers/web-1/json"),
    ("PUT", "/v1.41/_ping"),
    ("DELETE", "/v1.41/containers/web-1/json"),
    ("GET", "/v1.41/containers/web-1/start"),
    ("OPTIONS", "/_ping"),
]


@pytest.mark.parametrize(("method", "path", "rule"), ALLOWED)
def test_an_allowed_call_matches_exactly_its_rule(method: str, path: str, rule: str) -> None:
    decided = decide(build(from_environ(EVERYTHING)), method, path)
    assert decided is not None
    assert decided.name == rule


@pytest.mark.parametrize(("method", "path"), REFUSED)
def test_a_forbidden_call_is_refused_even_with_every_switch_on(method: str, path: str) -> None:
    assert decide(build(from_environ(EVERYTHING)), method, path) is None


@pytest.mark.parametrize(
    ("env", "method", "path"),
    [
        ({}, "GET", "/v1.41/containers/json"),
        ({}, "GET", "/v1.41/info"),
        ({}, "GET", "/v1.41/images/json"),
        ({}, "GET", "/v1.41/networks"),
        ({}, "GET", "/v1.41/volumes"),
        ({"PING": "0"}, "HEAD", "/_ping"),
        ({"VERSION": "0"}, "GET", "/version"),
        ({**VISIBLE, "EVENTS": "0"}, "GET", "/events"),
        # reads of containers need CONTAINERS=1 and a visible name
        (VISIBLE, "GET", "/v1.41/containers/web-1/json"),
        ({"CONTAINERS": "1"}, "GET", "/v1.41/containers/json"),
        # with nothing declared visible, a list or event stream is refused, never unfiltered
        ({}, "GET", "/v1.41/events"),
        # writes need POST=1 and their own switch
        ({**VISIBLE, "ALLOW_START": "1"}, "POST", "/v1.41/containers/web-1/start"),
        ({**VISIBLE, "POST": "1"}, "POST", "/v1.41/containers/web-1/start"),
        ({**VISIBLE, "POST": "1", "ALLOW_STOP": "1"}, "POST", "/v1.41/containers/web-1/kill"),
        ({**VISIBLE, "POST": "1", "ALLOW_STOP": "1"}, "POST", "/v1.41/containers/web-1/start"),
    ],
)
def test_a_section_switched_off_is_refused(env: dict[str, str], method: str, path: str) -> None:
    assert decide(build(from_environ(env)), method, path) is None


@pytest.mark.parametrize("endpoint", ["json", "logs", "stats", "top"])
def test_a_full_container_id_is_deferred_to_the_engine_check(endpoint: str) -> None:
    rule = decide(
        build(from_environ(EVERYTHING)), "GET", f"/v1.41/containers/{'0f' * 32}/{endpoint}"
    )
    assert rule is not None
    assert rule.backend is Backend.BY_ID


def test_with_default_switches_only_ping_and_version_are_served() -> None:
    rules = build(from_environ({}))
    assert [rule.name for rule in rules] == ["ping", "version"]


@pytest.mark.parametrize(
    ("rule", "backend"),
    [("inspect", Backend.INSPECT), ("logs", Backend.STREAM), ("events", Backend.STREAM)],
)
def test_bodies_with_env_are_inspected_and_streams_get_a_long_timeout(
    rule: str, backend: Backend
) -> None:
    rules = {r.name: r for r in build(from_environ(EVERYTHING))}
    assert rules[rule].backend is backend


def _filters(query: str) -> dict[str, list[str]]:
    return json.loads(parse_qs(query)["filters"][0])


def test_the_container_list_is_narrowed_to_exact_visible_names() -> None:
    query = container_list_query(("web-1", "db.main"))
    patterns = _filters(query)["name"]
    names = ["/web-1", "/db.main", "/web-10", "/xweb-1", "/dbXmain", "/db.main2"]
    matched = [n for n in names if any(re.search(p, n) for p in patterns)]
    assert matched == ["/web-1", "/db.main"]
    assert parse_qs(query)["all"] == ["1"]


def test_events_are_narrowed_to_visible_containers() -> None:
    assert _filters(events_query(("web-1", "db.main"))) == {"container": ["web-1", "db.main"]}


def test_every_pattern_is_anchored_at_both_ends() -> None:
    for rule in build(from_environ(EVERYTHING)):
        assert rule.pattern.startswith("^(/v1\\.[0-9]{1,2})?/")
        assert rule.pattern.endswith("$")


@given(st.text(alphabet="/.%-_azv0123456789:JSONjson", max_size=40))
def test_every_allowed_path_is_plain(path: str) -> None:
    """Whatever the path, an allowed one has no '//', no dot segment and no encoding."""
    rule = decide(build(from_environ(EVERYTHING)), "GET", path)
    if rule is not None:
        assert "//" not in path
        assert "/." not in path
        assert "%" not in path
        assert path.startswith("/")
