"""Environment switches: Tecnativa's names and defaults; anything unclear refuses to start."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.socketproxy.render import render
from ironcurtain.socketproxy.rules import ApiRange
from ironcurtain.socketproxy.settings import (
    NEVER,
    SERVED,
    SettingsError,
    from_environ,
    visible_names,
)

ENGINE = ApiRange((1, 12), (1, 41))


def test_defaults_are_tecnativas_ping_version_events() -> None:
    settings = from_environ({})
    assert settings.switches == {"PING", "VERSION", "EVENTS"}
    assert settings.visible == ()
    assert settings.socket_path == "/var/run/docker.sock"
    assert settings.port == 2375


@pytest.mark.parametrize("name", sorted(SERVED))
def test_each_served_switch_can_be_turned_on_and_off(name: str) -> None:
    assert from_environ({name: "1"}).on(name)
    assert not from_environ({name: "0"}).on(name)


@pytest.mark.parametrize("name", sorted(NEVER))
def test_a_never_served_section_switched_on_refuses_to_start(name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        from_environ({name: "1"})


@pytest.mark.parametrize("name", sorted(NEVER))
def test_a_never_served_section_switched_off_is_accepted(name: str) -> None:
    assert from_environ({name: "0"}).switches == {"PING", "VERSION", "EVENTS"}


@pytest.mark.parametrize("value", ["yes", "true", "2", "-1", "on", "1 1"])
def test_a_switch_value_other_than_0_or_1_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="0 or 1"):
        from_environ({"CONTAINERS": value})


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ("", ()),
        ("postgres", ("postgres",)),
        ("web-1, db.main ,web-1", ("web-1", "db.main")),
        ("proj_postgres_1,,", ("proj_postgres_1",)),
    ],
)
def test_visible_names_are_parsed_in_order_without_duplicates(
    raw: str, names: tuple[str, ...]
) -> None:
    assert visible_names(raw) == names


@pytest.mark.parametrize(
    "raw",
    [
        "/postgres",  # Docker's internal leading slash
        "-x",
        "a",  # Docker names have two characters at least
        "has space",
        "a/b",
        "a%2Fb",
        "..",
        "name*",
        "x" * 129,
    ],
)
def test_a_malformed_visible_name_is_refused(raw: str) -> None:
    with pytest.raises(SettingsError, match="not a container name"):
        visible_names(raw)


@pytest.mark.parametrize("raw", ["abc123", "deadbeef", "ABCDEF", "0123456789" * 6 + "abcd"])
def test_a_hex_only_name_is_refused_because_docker_would_read_it_as_an_id_prefix(raw: str) -> None:
    with pytest.raises(SettingsError, match="container ID"):
        visible_names(raw)


@pytest.mark.parametrize(
    "path",
    ["relative.sock", "/var/run/docker sock", "/x'y", "/a#b", "/$HOME/d.sock", "/a\\b", "/../x"],
)
def test_an_unsafe_socket_path_is_refused(path: str) -> None:
    with pytest.raises(SettingsError, match="SOCKET_PATH"):
        from_environ({"SOCKET_PATH": path})


@pytest.mark.parametrize("port", ["0", "65536", "http", "-1", "23 75", "²", "٢٣٧٥", "0x10"])
def test_a_bad_port_is_refused(port: str) -> None:
    with pytest.raises(SettingsError, match="SOCKETPROXY_PORT"):
        from_environ({"SOCKETPROXY_PORT": port})


@pytest.mark.parametrize(
    "bind",
    ["localhost", "0.0.0.0:1", "256.0.0.1", "1.2.3", "::1", "1.2.3.4\n#", "01.2.3.4"],
)
def test_a_bind_address_that_is_not_a_plain_ipv4_address_is_refused(bind: str) -> None:
    with pytest.raises(SettingsError, match="SOCKETPROXY_BIND"):
        from_environ({"SOCKETPROXY_BIND": bind})


def test_the_docker_frontend_binds_where_it_is_told() -> None:
    config = render(
        from_environ({"SOCKETPROXY_BIND": "127.0.0.1", "SOCKETPROXY_PORT": "2376"}), ENGINE
    )
    binds = [line.strip() for line in config.splitlines() if line.strip().startswith("bind ")]
    assert binds == ["bind 127.0.0.1:8404", "bind 127.0.0.1:2376"]


KEYS = st.sampled_from([*SERVED, *NEVER, "SOCKETPROXY_PORT", "SOCKET_PATH", "SOCKETPROXY_BIND"])


@given(st.dictionaries(KEYS, st.text(max_size=8)))
def test_any_environment_either_renders_or_raises_a_settings_error(env: dict[str, str]) -> None:
    try:
        settings = from_environ(env)
    except SettingsError:
        return
    assert render(settings, ENGINE).startswith("# Rendered")


@given(st.text(max_size=60))
def test_visible_names_either_parse_to_safe_names_or_raise(raw: str) -> None:
    try:
        names = visible_names(raw)
    except SettingsError:
        return
    for name in names:
        assert name.replace("-", "").replace("_", "").replace(".", "").isascii()
        assert all(c.isalnum() or c in "-_." for c in name)
        assert not name.startswith(("-", ".", "_"))
