"""Sibling service declarations: what is accepted, what is refused and why, and the compose
override that wires them (a second sidecar; the doors' sidecar never joins a team network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.session import hardening, siblings
from ironcurtain.session.siblings import Sibling, SiblingError, parse

DOORS = (8080, 3128, 2375)
DB = {"name": "db", "network": "dev", "host": "team-postgres", "port": 5432}


def one(**changes: Any) -> dict[str, Any]:
    return {"siblings": [{**DB, **changes}]}


def test_a_declared_sibling_is_parsed_with_its_defaults() -> None:
    assert parse(one(), "f", DOORS) == (Sibling("db", "dev", "team-postgres", 5432, 5432, False),)


def test_listen_and_docker_visible_are_taken_when_given() -> None:
    (db,) = parse(one(listen=15432, docker_visible=True), "f", DOORS)
    assert (db.listen, db.docker_visible) == (15432, True)


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"siblings": [DB], "extra": 1}, "exactly one key"),
        ({"siblings": DB}, "must be a list"),
        (one(colour="red"), "unknown keys ['colour']"),
        ({"siblings": [{"name": "db", "network": "dev", "port": 1}]}, "missing ['host']"),
        (one(name="Db"), "must be plain"),
        (one(name="db;rm"), "must be plain"),
        (one(name="mcp-proxy"), "the session's own"),
        (one(name="sidecar"), "the session's own"),
        (one(network="dev net"), "not a Docker network name"),
        (one(host="10.0.0.5"), "by name, not address"),
        (one(host="agent"), "not a sibling's name"),
        (one(host="a b"), "not a service name"),
        (one(port=8080), "a door's port"),
        (one(port=3128), "a door's port"),
        (one(port=6000, listen=2375), "a door's port"),
        (one(port=80), "use 1024-65535"),
        (one(port=0, listen=5000), "not a TCP port"),
        (one(port="5432"), "must be a number"),
        (one(port=True), "must be a number"),
        (one(docker_visible="yes please"), "yes or no"),
        ({"siblings": [DB, DB]}, "declared twice"),
        ({"siblings": [DB, {**DB, "name": "db2"}]}, "taken by 'db'"),
        ({"siblings": ["db"]}, "a mapping"),
    ],
)
def test_a_bad_declaration_is_refused_saying_why(doc: object, reason: str) -> None:
    with pytest.raises(SiblingError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        parse(doc, "f", DOORS)


def test_a_file_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("siblings: [\n")
    with pytest.raises(SiblingError, match="cannot read"):
        siblings.load(bad, DOORS)


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.dictionaries(st.sampled_from([*sorted(siblings._KEYS), "other"]), VALUES, max_size=7)


@given(st.one_of(VALUES, FIELDS))
def test_any_document_parses_to_valid_siblings_or_is_refused(doc: object) -> None:
    try:
        found = parse({"siblings": [doc]}, "f", DOORS)
    except SiblingError:
        return
    for sibling in found:
        assert sibling.listen not in DOORS
        assert 1024 <= sibling.listen <= 65535


def test_the_override_adds_a_second_sidecar_on_the_agent_and_team_networks_only() -> None:
    found = parse(
        {
            "siblings": [
                {**DB, "docker_visible": True},
                {"name": "cache", "network": "dev", "host": "redis", "port": 6379},
                {"name": "queue", "network": "ops", "host": "mq", "port": 5672, "listen": 15672},
            ]
        },
        "f",
        DOORS,
    )
    doc = siblings.compose_override(found)
    service = doc["services"]["siblings"]
    assert set(doc["services"]) == {"siblings"}  # the doors' sidecar is left alone
    assert service["networks"] == {
        "agent": {"aliases": ["db", "cache", "queue"]},
        "sibling-0": {},
        "sibling-1": {},
    }
    assert "control" not in service["networks"]
    assert doc["networks"] == {
        "sibling-0": {"external": True, "name": "dev"},
        "sibling-1": {"external": True, "name": "ops"},
    }
    assert (
        service["environment"]["FORWARDS"]
        == "5432:team-postgres:5432,6379:redis:6379,15672:mq:5672"
    )
    for key, value in hardening.sidecar_compose_service().items():
        assert service[key] == value, key
    assert siblings.visible(found) == ("team-postgres",)
    yaml.safe_dump(doc)  # writable as the override file
