"""The MCP server side of the proxy as pure functions: version negotiation, result shapes.

Two eras reach the proxy over Streamable HTTP:
- handshake (2024-11-05 .. 2025-11-25): `initialize` negotiates a version and opens a session;
- per-request envelope (2026-07-28): every request carries its version, client info and
  capabilities in `params._meta`, mirrored in routing headers; no session.
Results are shaped per version, so a field a version does not define never reaches a client of
that version. What needs no backend is plain JSON here: `initialize`, `ping` and
`server/discover` results are built in every version's wire form, and a `tools/list` result is
sieved by listing.py; a `tools/call` result goes through the SDK's per-version result surface
(`serialize_server_result`), loaded on the first call (a backend starts for it anyway).
Tests compare every one of these with the SDK's surface, for every version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import listing
from .jsonrpc import INTERNAL_ERROR, INVALID_PARAMS, RpcError
from .wire import (
    HANDSHAKE_PROTOCOL_VERSIONS,
    KNOWN_PROTOCOL_VERSIONS,
    LATEST_HANDSHAKE_VERSION,
    MODERN_PROTOCOL_VERSIONS,
)

SERVER_INFO_META_KEY = "io.modelcontextprotocol/serverInfo"
CAPABILITIES: dict[str, Any] = {
    "completions": {},
    "prompts": {"listChanged": False},
    "resources": {"listChanged": False, "subscribe": False},
    "tools": {"listChanged": False},
}
# Handshake-era clients may set a log level (2026-07-28 has no logging/setLevel): a backend's
# log notifications during that client's call are relayed at that level and above (streams.py).
# They may also subscribe to a resource's updates (http.py; 2026-07-28 has no resources/subscribe).
HANDSHAKE_CAPABILITIES: dict[str, Any] = dict(
    sorted(
        {
            **CAPABILITIES,
            "logging": {},
            "resources": {"listChanged": False, "subscribe": True},
        }.items()
    )
)
SUBSCRIPTION_METHODS = frozenset({"resources/subscribe", "resources/unsubscribe"})
LOG_LEVELS = frozenset(
    {"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"}
)
# Resources and prompts: listed per server, each read and get decided (gate.py, catalog.py).
CATALOG_METHODS = frozenset(
    {
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "prompts/list",
        "prompts/get",
        "completion/complete",
    }
)
# Results a client may cache, and for how long: nothing here is cacheable (policy can change).
_CACHE_HINT: dict[str, Any] = {"ttlMs": 0, "cacheScope": "private"}
_CACHEABLE = frozenset(
    {
        "tools/list",
        "server/discover",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "prompts/list",
    }
)
# A result that may also be an InputRequiredResult (2026-07-28): one whose own field did not
# survive the shaping was not valid as itself, and is refused rather than sent empty.
_MUST_KEEP = {"resources/read": "contents", "prompts/get": "messages", "tools/call": "content"}
# Built here already in every version's wire form (no field a version lacks, no None). The
# SDK's wire models for initialize and server/discover, generated from the schema, declare
# their fields in sorted order: sorted here too, the same bytes on the wire.
_BUILT = frozenset({"initialize", "ping", "server/discover"})
_SORTED = frozenset({"initialize", "server/discover"})


@dataclass(frozen=True, slots=True)
class ServerInfo:
    name: str
    version: str
    instructions: str


def negotiate(requested: object) -> str:
    """The version answered to `initialize`: the client's if we speak it, else our latest."""
    if isinstance(requested, str) and requested in HANDSHAKE_PROTOCOL_VERSIONS:
        return requested
    return LATEST_HANDSHAKE_VERSION


def initialize_result(info: ServerInfo, params: Mapping[str, Any]) -> dict[str, Any]:
    requested = params.get("protocolVersion")
    if not isinstance(requested, str):
        raise RpcError(INVALID_PARAMS, "initialize needs params.protocolVersion (a string)")
    if not isinstance(params.get("capabilities"), dict):
        raise RpcError(INVALID_PARAMS, "initialize needs params.capabilities (an object)")
    client = params.get("clientInfo")
    if not (
        isinstance(client, dict)
        and isinstance(client.get("name"), str)
        and isinstance(client.get("version"), str)
    ):
        raise RpcError(INVALID_PARAMS, "initialize needs params.clientInfo with name and version")
    version = negotiate(requested)
    return shape(
        info,
        "initialize",
        version,
        {
            "protocolVersion": version,
            "capabilities": HANDSHAKE_CAPABILITIES,
            "serverInfo": {"name": info.name, "version": info.version},
            "instructions": info.instructions,
        },
    )


def discover_result(info: ServerInfo, version: str) -> dict[str, Any]:
    return shape(
        info,
        "server/discover",
        version,
        {
            "supportedVersions": list(MODERN_PROTOCOL_VERSIONS),
            "capabilities": CAPABILITIES,
            "instructions": info.instructions,
        },
    )


def call_arguments(params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(tool name, arguments) of a tools/call, or INVALID_PARAMS."""
    name = params.get("name")
    if not isinstance(name, str):
        raise RpcError(INVALID_PARAMS, "tools/call needs params.name (a string)")
    arguments = params.get("arguments")
    if arguments is None:
        return name, {}
    if not isinstance(arguments, dict):
        raise RpcError(INVALID_PARAMS, "tools/call params.arguments must be an object")
    return name, arguments


def log_level(params: Mapping[str, Any]) -> str:
    level = params.get("level")
    if not isinstance(level, str) or level not in LOG_LEVELS:
        raise RpcError(INVALID_PARAMS, "logging/setLevel needs params.level (a syslog level)")
    return level


def read_uri(params: Mapping[str, Any]) -> str:
    return uri_param(params, "resources/read")


def uri_param(params: Mapping[str, Any], method: str) -> str:
    uri = params.get("uri")
    if not isinstance(uri, str):
        raise RpcError(INVALID_PARAMS, f"{method} needs params.uri (a string)")
    return uri


def prompt_arguments(params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(prompt name, arguments) of a prompts/get, or INVALID_PARAMS."""
    name = params.get("name")
    if not isinstance(name, str):
        raise RpcError(INVALID_PARAMS, "prompts/get needs params.name (a string)")
    arguments = params.get("arguments")
    if arguments is None:
        return name, {}
    if not isinstance(arguments, dict):
        raise RpcError(INVALID_PARAMS, "prompts/get params.arguments must be an object")
    return name, arguments


def shape(info: ServerInfo, method: str, version: str, result: dict[str, Any]) -> dict[str, Any]:
    """A result in `version`'s wire form: sieved by its surface, stamped as 2026 requires."""
    if version not in KNOWN_PROTOCOL_VERSIONS:
        raise ValueError(f"version must be a known protocol version, got {version!r}")
    modern = version in MODERN_PROTOCOL_VERSIONS
    if modern:  # 2026-07-28 requires resultType; these methods also carry cache hints
        result = {
            **(_CACHE_HINT if method in _CACHEABLE else {}),
            "resultType": "complete",
            **result,
        }
    if method == "tools/list":
        result = listing.result(version, result)
    elif method in _SORTED:
        result = dict(sorted(result.items()))
    elif method not in _BUILT:
        from mcp_types import methods  # the first tools/call loads it: see the module doc

        if (method, version) in methods.SERVER_RESULTS:
            kept = _MUST_KEEP.get(method)
            had = kept is not None and kept in result
            result = methods.serialize_server_result(method, version, result)
            if had and kept not in result:
                raise RpcError(
                    INTERNAL_ERROR,
                    f"the backend's {method} result does not fit protocol version {version}",
                )
    if modern:
        meta = result.get("_meta")
        stamp = {SERVER_INFO_META_KEY: {"name": info.name, "version": info.version}}
        result["_meta"] = {**meta, **stamp} if isinstance(meta, dict) else stamp
    return result
