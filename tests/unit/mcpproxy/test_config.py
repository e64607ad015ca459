"""The backends file: Claude-style entries parsed into specs; anything odd is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironcurtain.mcpproxy.config import BackendSpec, ConfigError, load_backends, parse_backends

REPO = Path(__file__).resolve().parents[3]


def test_the_shipped_backends_file_parses() -> None:
    specs = {
        s.name: s for s in load_backends(REPO / "policy" / "servers.yaml", {"workspace": "/w"})
    }
    assert specs["filesystem"].args == ("/w",)
    assert specs["fetch"].egress
    assert specs["git"].env["GIT_CONFIG_KEY_0"] == "core.fsmonitor"


def test_a_url_backend_parses() -> None:
    (spec,) = parse_backends({"mcpServers": {"docs": {"url": "http://x:1/mcp"}}}, "f", {})
    assert spec == BackendSpec(name="docs", url="http://x:1/mcp")


@pytest.mark.parametrize(
    ("doc", "fault"),
    [
        ({}, "mcpServers"),
        ({"mcpServers": []}, "mcpServers"),
        ({"mcpServers": {"Bad__Name": {"command": "x"}}}, "must match"),
        ({"mcpServers": {"a": {"command": "x", "url": "y"}}}, "exactly one"),
        ({"mcpServers": {"a": {}}}, "exactly one"),
        ({"mcpServers": {"a": {"command": "x", "args": "-v"}}}, "args must be a list"),
        ({"mcpServers": {"a": {"command": "x", "shell": True}}}, "unknown keys"),
        ({"mcpServers": {"a": {"command": "${nope}"}}}, "unknown variable"),
        ({"mcpServers": {"a": {"command": "x", "egress": "yes"}}}, "egress"),
    ],
)
def test_a_malformed_backends_file_is_refused(doc: object, fault: str) -> None:
    with pytest.raises(ConfigError, match=fault):
        parse_backends(doc, "servers.yaml", {})
