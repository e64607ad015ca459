"""The allowlist as tables: what each switch serves, and every variant that must be refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.socketproxy.rules import ApiRange, Backend, Rule, build, decide, omitted
from ironcurtain.socketproxy.settings import Settings, from_environ

ENGINE = ApiRange((1, 12), (1, 41))


def rules_for(env: dict[str, str], engine: ApiRange = ENGINE) -> tuple[Rule, ...]:
    return build(from_environ(env), engine)


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
    ("GET", "/v1.25/version", "version"),
    ("GET", "/v1.28/networks", "networks"),
    ("GET", "/v1.25/containers/web-1/json", "inspect"),
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
    ("POST", "/v1.41/containers/db.main/kill", "kill"),
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
    # API versions below a section's floor widen its answer; above the engine's, nobody knows
    ("GET", "/v1.27/networks"),
    ("GET", "/v1.12/networks"),
    ("GET", "/v1.24/containers/web-1/json"),
    ("GET", "/v1.19/containers/web-1/json"),
    ("GET", "/v1.24/containers/json"),
    ("GET", "/v1.24/events"),
    ("GET", "/v1.24/_ping"),
    ("GET", "/v1.42/_ping"),
    ("GET", "/v1.99/containers/web-1/json"),
    ("GET", "/v1.041/containers/web-1/json"),
    ("GET", "/v1.4/containers/web-1/json"),
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
    decided = decide(rules_for(EVERYTHING), method, path)
    assert decided is not None
    assert decided.name == rule


@pytest.mark.parametrize(("method", "path"), REFUSED)
def test_a_forbidden_call_is_refused_even_with_every_switch_on(method: str, path: str) -> None:
    assert decide(rules_for(EVERYTHING), method, path) is None


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
    assert decide(rules_for(env), method, path) is None


@pytest.mark.parametrize("endpoint", ["json", "logs", "stats", "top"])
def test_a_full_container_id_is_deferred_to_the_engine_check(endpoint: str) -> None:
    rule = decide(rules_for(EVERYTHING), "GET", f"/v1.41/containers/{'0f' * 32}/{endpoint}")
    assert rule is not None
    assert rule.backend is Backend.BY_ID


def test_with_default_switches_only_ping_and_version_are_served() -> None:
    rules = rules_for({})
    assert [rule.name for rule in rules] == ["ping", "version"]


@pytest.mark.parametrize(
    ("rule", "backend"),
    [("inspect", Backend.INSPECT), ("logs", Backend.STREAM), ("events", Backend.STREAM)],
)
def test_bodies_with_env_are_inspected_and_streams_get_a_long_timeout(
    rule: str, backend: Backend
) -> None:
    rules = {r.name: r for r in rules_for(EVERYTHING)}
    assert rules[rule].backend is backend


def test_every_pattern_is_anchored_at_both_ends() -> None:
    for rule in rules_for(EVERYTHING):
        assert rule.pattern.startswith("^(/v1\\.(")
        assert rule.pattern.endswith("$")


@given(st.text(alphabet="/.%-_azv0123456789:JSONjson", max_size=40))
def test_every_allowed_path_is_plain(path: str) -> None:
    """Whatever the path, an allowed one has no '//', no dot segment and no encoding."""
    rule = decide(rules_for(EVERYTHING), "GET", path)
    if rule is not None:
        assert "//" not in path
        assert "/." not in path
        assert "%" not in path
        assert path.startswith("/")


def test_the_version_range_runs_from_each_floor_to_the_engines_version() -> None:
    rules = {r.name: r for r in rules_for(EVERYTHING)}
    assert rules["networks"].versions == r"(/v1\.(" + "|".join(map(str, range(28, 42))) + "))?"
    assert rules["inspect"].versions == r"(/v1\.(" + "|".join(map(str, range(25, 42))) + "))?"


def test_an_unversioned_path_is_the_engines_version_so_an_old_engine_serves_no_networks() -> None:
    old = ApiRange((1, 12), (1, 27))
    settings = from_environ(EVERYTHING)
    assert decide(build(settings, old), "GET", "/networks") is None
    assert decide(build(settings, old), "GET", "/v1.27/containers/web-1/json") is not None
    assert omitted(settings, old) == ("networks",)


def test_an_engine_that_refuses_old_versions_raises_the_floor() -> None:
    rules = build(from_environ(EVERYTHING), ApiRange((1, 30), (1, 41)))
    assert decide(rules, "GET", "/v1.29/_ping") is None
    assert decide(rules, "GET", "/v1.30/_ping") is not None


def test_an_api_2_engine_is_served_nothing_rather_than_guessed() -> None:
    assert build(Settings(frozenset({"PING"}), ()), ApiRange((1, 24), (2, 0))) == ()


@pytest.mark.parametrize("rule", ["top", "ping", "version", "info", "start"])
def test_endpoints_that_take_no_query_have_an_empty_allowlist(rule: str) -> None:
    rules = {r.name: r for r in rules_for(EVERYTHING)}
    assert rules[rule].spec() == ""


def test_no_rule_takes_the_parameters_that_reveal_environments_or_hidden_names() -> None:
    rules = {r.name: r for r in rules_for(EVERYTHING)}
    for rule in rules.values():
        assert not {param.name for param in rule.params} & {"ps_args", "details"}
    assert not {param.name for param in rules["list"].params} & {"before", "since"}


def test_lists_and_events_own_their_container_filters() -> None:
    rules = {r.name: r for r in rules_for(EVERYTHING)}
    assert rules["list"].owned_spec() == "name=@exact"
    assert rules["events"].owned_spec() == "type=container;container=@ids"
