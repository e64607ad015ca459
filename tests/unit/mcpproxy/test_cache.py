"""Saved tool listings: keyed by the backend's settings and installed version, and backends that
start on their first call from them (real servers: the reference filesystem server, mcp-server-git).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest

from ironcurtain.mcpproxy.cache import ToolCache, identity, key
from ironcurtain.mcpproxy.config import BackendSpec, load_backends
from ironcurtain.mcpproxy.gate import Gate
from ironcurtain.mcpproxy.service import ProxySettings, running_gate

from .conftest import write_servers
from .test_gate import _children_named, text

SPEC = BackendSpec(name="git", command="mcp-server-git", args=("--x",), env={"A": "1"})


@pytest.mark.parametrize(
    ("changed", "installed"),
    [
        (dataclasses.replace(SPEC, command="other-server"), "v1"),
        (dataclasses.replace(SPEC, args=("--y",)), "v1"),
        (dataclasses.replace(SPEC, env={"A": "2"}), "v1"),
        (dataclasses.replace(SPEC, egress=True), "v1"),
        (dataclasses.replace(SPEC, name="git2"), "v1"),
        (SPEC, "v2"),
    ],
)
def test_any_change_of_settings_or_installed_version_changes_the_key(
    changed: BackendSpec, installed: str
) -> None:
    assert key(changed, installed) != key(SPEC, "v1")
    assert key(SPEC, "v1") == key(dataclasses.replace(SPEC), "v1")


def test_the_identity_names_the_npm_package_version_and_the_files_content(tmp_path: Path) -> None:
    package = tmp_path / "node_modules" / "server"
    (package / "dist").mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"name": "server", "version": "1.2.3"}))
    script = package / "dist" / "index.js"
    script.write_text("#!/usr/bin/env node\n")
    script.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "the-server").symlink_to(script)
    spec = BackendSpec(name="s", command="the-server", env={"PATH": str(bin_dir)})
    first = identity(spec, {})
    assert "npm server@1.2.3" in first
    script.write_text("#!/usr/bin/env node\n// changed\n")
    assert identity(spec, {}) != first


def test_the_identity_names_the_python_distribution_of_a_console_script(tmp_path: Path) -> None:
    script = tmp_path / "py-server"
    script.write_text("#!/usr/bin/python3\nimport sys\n")
    script.chmod(0o755)
    spec = BackendSpec(name="s", command="py-server", env={"PATH": str(tmp_path)})
    assert "pypi py-server==1.0" in identity(spec, {"py-server": ["pypi py-server==1.0"]})


def test_a_missing_command_or_a_remote_server_is_never_cached(tmp_path: Path) -> None:
    cache = ToolCache(tmp_path)
    tool = {"name": "t", "inputSchema": {"type": "object"}}
    missing = BackendSpec(name="m", command="no-such-server-anywhere", env={"PATH": str(tmp_path)})
    remote = BackendSpec(name="r", url="http://127.0.0.1:9/mcp")
    for spec in (missing, remote):
        assert cache.put(spec, [tool]) is None
        assert cache.get(spec) is None


def test_a_saved_listing_round_trips_and_a_damaged_one_is_ignored(tmp_path: Path) -> None:
    script = tmp_path / "bin" / "a-server"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    spec = BackendSpec(name="a", command="a-server", env={"PATH": str(script.parent)})
    cache = ToolCache(tmp_path / "cache")
    tools = [{"name": "t", "inputSchema": {"type": "object", "required": ["x"]}}]
    path = cache.put(spec, tools)
    assert path is not None
    assert cache.get(spec) == tools
    assert cache.get(dataclasses.replace(spec, args=("other",))) is None
    path.write_text("{not json")
    assert cache.get(spec) is None


# -- on demand, with real backends ---------------------------------------------------------


def _save(layout: dict[str, Path], cache_dir: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Listings as the image build makes them, by really starting the backends once."""
    settings = ProxySettings(
        policy_dir=layout["policy"], workspace=layout["workspace"], audit_file=Path("/x/a.jsonl")
    )
    specs = load_backends(layout["policy"] / "servers.yaml", settings.variables())
    cache = ToolCache(cache_dir)

    async def listing() -> None:
        with anyio.fail_after(60):
            await save()

    async def save() -> None:
        async with running_gate(
            dataclasses.replace(settings, audit_file=layout["audit"] / "build.jsonl")
        ) as gate:
            for spec in specs:
                live = list(gate.backends[spec.name].tools.values())
                doc = {"tools": json.loads(json.dumps(live))}  # a copy to edit
                edit(doc)
                cache.put(spec, doc["tools"])

    anyio.run(listing)


def _with_cached_gate(
    layout: dict[str, Path], cache_dir: Path, body: Callable[[Gate], Awaitable[Any]]
) -> Any:
    settings = ProxySettings(
        policy_dir=layout["policy"],
        workspace=layout["workspace"],
        audit_file=layout["audit"] / "session.jsonl",
        state_dir=layout["state"],
        tools_cache=cache_dir,
    )

    async def go() -> Any:
        with anyio.fail_after(60):
            async with running_gate(settings) as gate:
                return await body(gate)

    return anyio.run(go)


def test_with_saved_listings_no_backend_starts_until_its_first_call(
    layout: dict[str, Path], tmp_path: Path
) -> None:
    _save(layout, tmp_path / "cache", lambda doc: None)

    async def body(gate: Gate) -> tuple[list[str], list[int], types.CallToolResult, list[int]]:
        names = [t["name"] for t in gate.tools()]
        before = _children_named("mcp-server-filesystem")
        result = await gate.call(
            "filesystem__read_text_file", {"path": str(layout["workspace"] / "hello.txt")}
        )
        return names, before, result, _children_named("mcp-server-git")

    names, before, result, git = _with_cached_gate(layout, tmp_path / "cache", body)
    assert "filesystem__read_text_file" in names
    assert "git__git_status" in names
    assert "fetch__fetch" in names
    assert before == []  # listed from the cache, nothing started
    assert not result.is_error, text(result)
    assert "hello from the workspace" in text(result)
    assert git == []  # the backend nobody called never started
    start = json.loads((layout["audit"] / "session.jsonl").read_text().splitlines()[0])
    assert start["on_demand"] == ["fetch", "filesystem", "git"]


def test_a_backend_whose_live_tools_differ_from_its_saved_listing_is_checked_again(
    layout: dict[str, Path], tmp_path: Path
) -> None:
    def loosen(doc: dict[str, Any]) -> None:
        # The saved schema of read_text_file takes any `head`; the live one wants a number.
        for tool in doc["tools"]:
            if tool["name"] == "read_text_file":
                tool["inputSchema"]["properties"]["head"] = {}

    _save(layout, tmp_path / "cache", loosen)

    async def body(gate: Gate) -> tuple[types.CallToolResult, bool, types.CallToolResult]:
        # Fits the saved schema, not the live one: refused once the backend is seen to differ.
        arguments = {"path": str(layout["workspace"] / "hello.txt"), "head": "one"}
        loose = await gate.call("filesystem__read_text_file", arguments)
        drifted = gate.backends["filesystem"].drifted
        after = await gate.call("filesystem__read_text_file", arguments)
        return loose, drifted, after

    loose, drifted, after = _with_cached_gate(layout, tmp_path / "cache", body)
    assert drifted
    assert loose.is_error
    assert "no longer fit" in text(loose)
    assert after.is_error  # now the gate itself checks the live schema
    assert "input schema" in text(after)


def test_a_saved_listing_for_other_settings_is_not_used(
    layout: dict[str, Path], tmp_path: Path, filesystem_server: str
) -> None:
    _save(layout, tmp_path / "cache", lambda doc: None)
    write_servers(layout["policy"], filesystem_server, fetch_args=["--ignore-robots-txt"])

    async def body(gate: Gate) -> list[str]:
        return sorted(b.name for b in gate.backends.values() if b.on_demand)

    # fetch's args changed: started at once, as without a cache; the others start on demand.
    assert _with_cached_gate(layout, tmp_path / "cache", body) == ["filesystem", "git"]
