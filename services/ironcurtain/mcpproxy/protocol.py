"""The MCP server side of the proxy as pure functions: version negotiation, result shapes.

Two eras reach the proxy over Streamable HTTP:
- handshake (2024-11-05 .. 2025-11-25): `initialize` negotiates a version and opens a session;
- per-request envelope (2026-07-28): every request carries its version, client info and
  capabilities in `params._meta`, mirrored in routing headers; no session.
Results are shaped by the SDK's per-version result surface (`serialize_server_result`), so a
field a version does not define never reaches a client of that version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp_types import methods as _methods
from mcp_types.version import (
    HANDSHAKE_PROTOCOL_VERSIONS,
    LATEST_HANDSHAKE_VERSION,
    MODERN_PROTOCOL_VERSIONS,
)

from .jsonrpc import INVALID_PARAMS, RpcError

SERVER_INFO_META_KEY = "io.modelcontextprotocol/serverInfo"
CAPABILITIES: dict[str, Any] = {"tools": {"listChanged": False}}
# Results a client may cache, and for how long: nothing here is cacheable (policy can change).
_CACHE_HINT: dict[str, Any] = {"ttlMs": 0, "cacheScope": "private"}
_CACHEABLE = frozenset({"tools/list", "server/discover"})


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
            "capabilities": CAPABILITIES,
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


def shape(info: ServerInfo, method: str, version: str, result: dict[str, Any]) -> dict[str, Any]:
    """A result in `version`'s wire form: sieved by its surface, stamped as 2026 requires."""
    modern = version in MODERN_PROTOCOL_VERSIONS
    if modern:  # 2026-07-28 requires resultType; these methods also carry cache hints
        result = {
            **(_CACHE_HINT if method in _CACHEABLE else {}),
            "resultType": "complete",
            **result,
        }
    if (method, version) in _methods.SERVER_RESULTS:
        result = _methods.serialize_server_result(method, version, result)
    if modern:
        meta = result.get("_meta")
        stamp = {SERVER_INFO_META_KEY: {"name": info.name, "version": info.version}}
        result["_meta"] = {**meta, **stamp} if isinstance(meta, dict) else stamp
    return result
