"""Tool listings without pydantic: the strict check refuses malformed tools (saying which and
why), and every result the proxy builds itself (tools/list, initialize, ping, server/discover)
is exactly what the SDK's per-version result surface makes of it, for every protocol version:
compared on real servers' saved listings and on generated tools."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import mcp_types.version as sdk_versions
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp_types import methods

from ironcurtain.mcpproxy import protocol, wire
from ironcurtain.mcpproxy.backend import Backend
from ironcurtain.mcpproxy.cache import ToolCache
from ironcurtain.mcpproxy.config import BackendSpec, load_backends
from ironcurtain.mcpproxy.listing import ListingError, check, check_all
from ironcurtain.mcpproxy.service import ProxySettings

from .test_cache import _save

INFO = protocol.ServerInfo("ironcurtain-mcp-proxy", "1.2.3", "Every call is checked.")
VERSIONS = wire.KNOWN_PROTOCOL_VERSIONS


def sdk_shape(method: str, version: str, result: dict[str, Any]) -> dict[str, Any]:
    """The proxy's shaping as it was, through the SDK: the reference ours must equal."""
    modern = version in wire.MODERN_PROTOCOL_VERSIONS
    if modern:
        hint = {"ttlMs": 0, "cacheScope": "private"}
        cacheable = method in ("tools/list", "server/discover")
        result = {**(hint if cacheable else {}), "resultType": "complete", **result}
    if (method, version) in methods.SERVER_RESULTS:
        result = methods.serialize_server_result(method, version, result)
    if modern:
        meta = result.get("_meta")
        stamp = {protocol.SERVER_INFO_META_KEY: {"name": INFO.name, "version": INFO.version}}
        result["_meta"] = {**meta, **stamp} if isinstance(meta, dict) else stamp
    return result


def sdk_listing(tools: list[dict[str, Any]], version: str) -> dict[str, Any]:
    """tools/list as the proxy answered it before: each tool through the SDK's Tool model."""
    dumped = [
        types.Tool.model_validate(t).model_dump(by_alias=True, mode="json", exclude_none=True)
        for t in tools
    ]
    return sdk_shape("tools/list", version, {"tools": dumped})


def same(ours: dict[str, Any], sdk: dict[str, Any]) -> None:
    assert ours == sdk
    assert json.dumps(ours) == json.dumps(sdk)  # the same bytes: field order too


# -- the constants ------------------------------------------------------------------------------


def test_the_protocol_constants_are_the_sdks() -> None:
    assert wire.HANDSHAKE_PROTOCOL_VERSIONS == sdk_versions.HANDSHAKE_PROTOCOL_VERSIONS
    assert wire.MODERN_PROTOCOL_VERSIONS == sdk_versions.MODERN_PROTOCOL_VERSIONS
    assert wire.KNOWN_PROTOCOL_VERSIONS == sdk_versions.KNOWN_PROTOCOL_VERSIONS
    assert wire.LATEST_HANDSHAKE_VERSION == sdk_versions.LATEST_HANDSHAKE_VERSION
    assert wire.CONNECTION_CLOSED == types.CONNECTION_CLOSED
    assert wire.HEADER_MISMATCH == types.HEADER_MISMATCH


# -- the check: a table -------------------------------------------------------------------------

OK = {"name": "read", "inputSchema": {"type": "object"}}

ACCEPTED = [
    OK,
    {**OK, "title": "Read", "description": "reads", "_meta": {"k": None}},
    {**OK, "inputSchema": {"type": "object", "properties": {"p": {}, "q": True}, "x": None}},
    {**OK, "inputSchema": {"type": "object", "$schema": None, "required": ["p"]}},
    {**OK, "outputSchema": {"type": "object", "additionalProperties": False}},
    {**OK, "execution": {}},
    {**OK, "execution": {"taskSupport": "optional"}},
    {**OK, "icons": [{"src": "data:,", "mimeType": "image/png", "sizes": ["any"]}]},
    {**OK, "icons": [{"src": "x", "theme": "dark"}]},
    {**OK, "annotations": {"title": "t", "readOnlyHint": True, "openWorldHint": False}},
]

REFUSED = [
    ([], "tool: must be an object"),
    ({"inputSchema": {"type": "object"}}, "tool.name: must be a string"),
    ({"name": 3, "inputSchema": {"type": "object"}}, "tool.name: must be a string"),
    ({"name": "read"}, "inputSchema is missing"),
    ({**OK, "inputSchema": {}}, 'inputSchema: type must be "object"'),
    ({**OK, "inputSchema": {"type": "string"}}, 'type must be "object"'),
    ({**OK, "inputSchema": {"type": "object", "$schema": 7}}, "$schema: must be a string"),
    ({**OK, "inputSchema": {"type": "object", "properties": []}}, "properties: must be an obj"),
    ({**OK, "inputSchema": {"type": "object", "properties": {"p": 1}}}, "properties.p: must be"),
    ({**OK, "inputSchema": {"type": "object", "required": "p"}}, "required: must be a list"),
    ({**OK, "inputSchema": {"type": "object", "required": [1]}}, "required: must be a list"),
    ({**OK, "outputSchema": {"properties": {}}}, 'outputSchema: type must be "object"'),
    ({**OK, "outputSchema": None}, "outputSchema: must be an object"),
    ({**OK, "title": None}, "title: must be a string"),
    ({**OK, "description": 1}, "description: must be a string"),
    ({**OK, "unknown": 1}, "unknown field 'unknown'"),
    ({**OK, "execution": {"taskSupport": "always"}}, "taskSupport: must be one of"),
    ({**OK, "execution": {"other": 1}}, "execution: unknown field 'other'"),
    ({**OK, "icons": {"src": "x"}}, "icons: must be a list"),
    ({**OK, "icons": [{}]}, "icons[0].src: must be a string"),
    ({**OK, "icons": [{"src": "x", "theme": "blue"}]}, "icons[0].theme: must be one of"),
    ({**OK, "icons": [{"src": "x", "sizes": "any"}]}, "icons[0].sizes: must be a list"),
    ({**OK, "icons": [{"src": "x", "href": "y"}]}, "icons[0]: unknown field 'href'"),
    ({**OK, "annotations": {"readOnlyHint": "yes"}}, "readOnlyHint: must be true or false"),
    ({**OK, "annotations": {"readOnlyHint": 1}}, "readOnlyHint: must be true or false"),
    ({**OK, "annotations": {"title": 1}}, "annotations.title: must be a string"),
    ({**OK, "annotations": {"hint": True}}, "annotations: unknown field 'hint'"),
    ({**OK, "_meta": []}, "_meta: must be an object"),
    ({**OK, "_meta": {"n": [float("inf")]}}, "Infinity or NaN"),
    ({**OK, "inputSchema": {"type": "object", "maximum": float("nan")}}, "Infinity or NaN"),
]


@pytest.mark.parametrize("tool", ACCEPTED)
def test_a_well_formed_tool_is_accepted_as_it_is(tool: dict[str, Any]) -> None:
    assert check(tool) is tool
    for version in VERSIONS:
        same(
            protocol.shape(INFO, "tools/list", version, {"tools": [tool]}),
            sdk_listing([tool], version),
        )


@pytest.mark.parametrize(("tool", "why"), REFUSED)
def test_a_malformed_tool_is_refused_saying_what_is_wrong(tool: object, why: str) -> None:
    with pytest.raises(ListingError, match=re.escape(why)):
        check(tool)


def test_a_listing_that_is_not_a_list_is_refused() -> None:
    with pytest.raises(ListingError, match="tools: must be a list"):
        check_all({"name": "read"})


def test_an_unknown_version_is_refused() -> None:
    for method in ("tools/list", "initialize", "ping", "tools/call"):
        with pytest.raises(ValueError, match="known protocol version"):
            protocol.shape(INFO, method, "2099-01-01", {"tools": []})


# -- equality with the SDK: the results built here --------------------------------------------


@pytest.mark.parametrize("version", wire.HANDSHAKE_PROTOCOL_VERSIONS)
def test_initialize_and_ping_are_the_sdks_for_every_handshake_version(version: str) -> None:
    params = {"protocolVersion": version, "capabilities": {}, "clientInfo": INFO_CLIENT}
    ours = protocol.initialize_result(INFO, params)
    raw = {
        "protocolVersion": version,
        "capabilities": protocol.HANDSHAKE_CAPABILITIES,
        "serverInfo": {"name": INFO.name, "version": INFO.version},
        "instructions": INFO.instructions,
    }
    same(ours, sdk_shape("initialize", version, raw))
    same(protocol.shape(INFO, "ping", version, {}), sdk_shape("ping", version, {}))


INFO_CLIENT = {"name": "client", "version": "1"}


@pytest.mark.parametrize("version", wire.MODERN_PROTOCOL_VERSIONS)
def test_discover_and_ping_are_the_sdks_for_every_modern_version(version: str) -> None:
    raw = {
        "supportedVersions": list(wire.MODERN_PROTOCOL_VERSIONS),
        "capabilities": protocol.CAPABILITIES,
        "instructions": INFO.instructions,
    }
    same(protocol.discover_result(INFO, version), sdk_shape("server/discover", version, raw))
    same(protocol.shape(INFO, "ping", version, {}), sdk_shape("ping", version, {}))


def test_real_servers_saved_listings_are_shaped_as_the_sdk_shapes_them(
    layout: dict[str, Path], tmp_path: Path
) -> None:
    _save(layout, tmp_path / "cache", lambda doc: None)
    settings_ = ProxySettings(
        policy_dir=layout["policy"], workspace=layout["workspace"], audit_file=Path("/x/a.jsonl")
    )
    specs = load_backends(layout["policy"] / "servers.yaml", settings_.variables())
    saved = ToolCache(tmp_path / "cache")
    listings = [saved.get(spec) for spec in specs]
    assert len(listings) == 3  # filesystem, git, fetch: each saved and read
    assert all(listings)
    for tools in listings:
        assert tools is not None
        for version in VERSIONS:
            ours = protocol.shape(INFO, "tools/list", version, {"tools": tools})
            same(ours, sdk_listing(tools, version))


# -- equality with the SDK: generated tools ---------------------------------------------------

_text = st.text(max_size=8)
_json = st.recursive(  # what a JSON document holds (Python's json also reads Infinity: _near)
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)
_opt = st.none() | _text


@st.composite
def _schema(draw: st.DrawFn) -> dict[str, Any]:
    # Other keywords are free; the ones drawn below are not (a random `required: {}` is a near
    # miss, which the near-miss tests judge: our check refuses what the SDK would coerce).
    other = _text.filter(lambda key: key not in {"type", "$schema", "properties", "required"})
    schema: dict[str, Any] = draw(st.dictionaries(other, _json, max_size=3))
    schema["type"] = "object"
    if draw(st.booleans()):
        schema["$schema"] = draw(_opt)
    if draw(st.booleans()):
        values = st.booleans() | st.dictionaries(_text, _json, max_size=2)
        schema["properties"] = draw(st.none() | st.dictionaries(_text, values, max_size=3))
    if draw(st.booleans()):
        schema["required"] = draw(st.none() | st.lists(_text, max_size=3))
    return dict(draw(st.permutations(list(schema.items()))))  # any field order


def _maybe(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


_icon = st.fixed_dictionaries(
    {"src": _text},
    optional={
        "mimeType": _text,
        "sizes": st.lists(_text, max_size=2),
        "theme": st.sampled_from(["light", "dark"]),
    },
)
_tool = st.fixed_dictionaries(
    {"name": st.text(min_size=1, max_size=10), "inputSchema": _schema()},
    optional={
        "title": _text,
        "description": _text,
        "outputSchema": _schema(),
        "execution": _maybe(taskSupport=st.sampled_from(["forbidden", "optional", "required"])),
        "icons": st.lists(_icon, max_size=2),
        "annotations": _maybe(
            title=_text,
            readOnlyHint=st.booleans(),
            destructiveHint=st.booleans(),
            idempotentHint=st.booleans(),
            openWorldHint=st.booleans(),
        ),
        "_meta": st.dictionaries(_text, _json, max_size=3),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_tool, max_size=3))
def test_generated_tools_are_shaped_as_the_sdk_shapes_them(tools: list[dict[str, Any]]) -> None:
    checked = check_all(tools)
    for version in VERSIONS:
        same(
            protocol.shape(INFO, "tools/list", version, {"tools": checked}),
            sdk_listing(tools, version),
        )


def _sdk_accepts(tool: object) -> bool:
    try:
        for version in VERSIONS:
            sdk_listing([tool], version)  # type: ignore[list-item]
    except (ValueError, TypeError):  # pydantic's ValidationError is a ValueError
        return False
    return True


_near = _json | st.sampled_from(["object", "dark", "optional", "yes", 1, True, [], {}, math.inf])


def _places(value: Any, depth: int = 0) -> list[tuple[Any, Any]]:
    """(container, key) pairs of a tool's structure, down to schema properties."""
    found: list[tuple[Any, Any]] = []
    if depth > 3:
        return found
    if isinstance(value, dict):
        for key in [*value, "other", "type", "src", "theme", "taskSupport", "readOnlyHint"]:
            found.append((value, key))
        for item in value.values():
            found += _places(item, depth + 1)
    elif isinstance(value, list):
        found += [(value, i) for i in range(len(value))]
        for item in value:
            found += _places(item, depth + 1)
    return found


@st.composite
def _near_miss(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed tool with one value anywhere in it replaced by a near miss."""
    tool = json.loads(json.dumps(draw(_tool)))
    container, key = draw(st.sampled_from(_places(tool)))
    container[key] = draw(_near)
    return tool


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_near_miss())
def test_a_tool_the_sdk_would_refuse_for_some_version_is_refused(tool: dict[str, Any]) -> None:
    """Fail closed as before: whatever we accept the SDK accepts, identically shaped. (We are
    stricter: no lax coercion such as "yes" for true, no unknown or None fields.)"""
    try:
        check(tool)
    except ListingError:
        return
    assert _sdk_accepts(tool)
    for version in VERSIONS:
        ours = protocol.shape(INFO, "tools/list", version, {"tools": [tool]})
        same(ours, sdk_listing([tool], version))


# -- a live listing: refused at the backend's start -------------------------------------------

_SERVER = r"""
import json, sys
LISTING = json.loads(sys.argv[1])
for line in sys.stdin:
    message = json.loads(line)
    if "id" not in message:
        continue
    result = {}
    if message["method"] == "initialize":
        result = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                  "serverInfo": {"name": "s", "version": "0"}}
    elif message["method"] == "tools/list":
        result = {"tools": LISTING}
    print(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}), flush=True)
"""


def _backend(listing: list[dict[str, Any]]) -> Backend:
    args = ("-c", _SERVER, json.dumps(listing))
    return Backend(BackendSpec(name="s", command=sys.executable, args=args), backoff_min_s=5.0)


def test_a_live_listing_the_check_refuses_fails_the_backends_start_saying_why() -> None:
    # The SDK's Tool model takes any object as inputSchema; no version's wire schema does.
    backend = _backend([{"name": "bad", "inputSchema": {"type": "string"}}])

    async def go() -> None:
        with anyio.fail_after(10):
            await backend._connect_and_watch()  # one start, as `run` makes it

    with pytest.raises(ListingError, match=re.escape("tool 'bad'.inputSchema: type must be")):
        anyio.run(go)
    assert backend.tools == {}
    assert not backend.ready


def test_a_well_formed_live_listing_starts_the_backend() -> None:  # the control
    backend = _backend([{"name": "good", "inputSchema": {"type": "object"}}])

    async def go() -> bool:
        async with anyio.create_task_group() as tg:
            tg.start_soon(backend.run)
            with anyio.fail_after(10):
                await backend.wait_ready()
            ready = backend.ready
            tg.cancel_scope.cancel()
        return ready

    assert anyio.run(go)
    assert list(backend.tools) == ["good"]
