"""The session plan: compose variables, the MITM's settings (parsed by the MITM's own parser),
the agent's env file and the --upstream option."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ironcurtain.mitm import settings as mitm_settings
from ironcurtain.mitm.fake_keys import new_fake_key
from ironcurtain.session.plan import Upstream, agent_env_file, parse_upstream

from .test_compose_file import _plan


def test_the_mitm_settings_parse_with_the_fake_key_and_the_secret_file() -> None:
    fake = new_fake_key("sk-ant-api03-")
    doc = _plan().mitm_settings({"anthropic": fake})
    parsed = mitm_settings.parse(doc)
    assert parsed.fake_keys == {"anthropic": fake}
    assert parsed.real_key_files == {"anthropic": Path("/run/secrets/anthropic_api_key")}
    assert parsed.session == "0123abcd"
    assert parsed.upstream == {}
    assert parsed.audit_key_file == Path("/run/secrets/audit_key_mitm")  # a secret, not env


def test_the_users_prices_reach_the_mitm_ahead_of_the_built_in_ones() -> None:
    mine = {"anthropic": [{"model": "house-*", "input": 2.0, "output": 4.0}]}
    parsed = mitm_settings.parse(
        replace(_plan(), prices=mine).mitm_settings({"anthropic": new_fake_key("sk-ant-api03-")})
    )
    anthropic = parsed.providers["anthropic"]
    assert anthropic.price("house-9").input == 2.0
    assert anthropic.price("claude-sonnet-4-5").input == 3.0  # the built-in table after it


def test_an_upstream_override_points_at_the_copied_ca() -> None:
    plan = replace(
        _plan(), upstreams=(Upstream("api.anthropic.com", "fakellm:8443", Path("/t/ca.pem")),)
    )
    parsed = mitm_settings.parse(plan.mitm_settings({"anthropic": new_fake_key("sk-ant-api03-")}))
    override = parsed.upstream["api.anthropic.com"]
    assert (override.host, override.port) == ("fakellm", 8443)
    assert override.ca_file == Path("/etc/ironcurtain/mitm/upstream-api.anthropic.com.pem")


def test_the_compose_env_names_the_session_and_its_forwards() -> None:
    env = _plan().compose_env()
    assert env["IRONCURTAIN_SESSION_ID"] == "0123abcd"
    assert env["IRONCURTAIN_FORWARDS"] == (
        "8080:mcp-proxy:8080,3128:mitm-proxy:3128,2375:localhost:2376"
    )
    assert (env["IRONCURTAIN_AGENT_UID"], env["IRONCURTAIN_AGENT_GID"]) == ("4242", "4343")
    assert not any("KEY" in k for k in env)
    # No sibling declared: the socket proxy serves no container at all.
    assert (env["IRONCURTAIN_DOCKER_CONTAINERS"], env["IRONCURTAIN_VISIBLE_CONTAINERS"]) == (
        "0",
        "",
    )


def test_docker_visible_siblings_are_exactly_the_socket_proxys_visible_containers() -> None:
    env = replace(_plan(), visible_containers=("team-postgres", "team-redis")).compose_env()
    assert env["IRONCURTAIN_DOCKER_CONTAINERS"] == "1"
    assert env["IRONCURTAIN_VISIBLE_CONTAINERS"] == "team-postgres,team-redis"


def test_the_agent_env_file_is_one_variable_a_line_and_refuses_line_breaks() -> None:
    assert agent_env_file({"B": "2", "A": "1"}) == "A=1\nB=2\n"
    with pytest.raises(ValueError, match="spans lines"):
        agent_env_file({"A": "1\nEVIL=1"})


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("api.anthropic.com=fakellm:8443", True),
        ("api.anthropic.com", False),
        ("=fakellm:8443", False),
        ("api.anthropic.com=fakellm", False),
    ],
)
def test_upstream_option(text: str, ok: bool) -> None:
    if ok:
        assert parse_upstream(text) == Upstream("api.anthropic.com", "fakellm:8443")
    else:
        with pytest.raises(ValueError, match="HOST=ADDRESS:PORT"):
            parse_upstream(text)


def test_the_compose_env_carries_the_chosen_runtimes_runc_unless_chosen() -> None:
    env = _plan().compose_env()
    assert (env["IRONCURTAIN_AGENT_RUNTIME"], env["IRONCURTAIN_ROOM_RUNTIME"]) == ("runc", "runc")
    env = replace(_plan(), agent_runtime="runsc").compose_env()
    assert (env["IRONCURTAIN_AGENT_RUNTIME"], env["IRONCURTAIN_ROOM_RUNTIME"]) == ("runsc", "runc")
