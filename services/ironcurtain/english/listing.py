"""List the tools of the configured MCP servers, started exactly as the proxy starts them.

Reuses `mcpproxy.backend.Backend` (start-up, pagination, schema checks) and stops each server
again once it has answered. A server that does not come up in time is named with its error.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from typing import Any

import anyio

from ..mcpproxy.backend import Backend
from ..mcpproxy.config import BackendSpec
from .annotate import ToolInfo


class ListingError(RuntimeError):
    pass


async def _one(spec: BackendSpec, timeout_s: float) -> tuple[ToolInfo, ...]:
    if spec.command is not None and shutil.which(spec.command) is None:
        raise ListingError(f"MCP server {spec.name!r}: command {spec.command!r} not found")
    backend = Backend(spec, backoff_min_s=0.2, backoff_max_s=1.0)
    async with anyio.create_task_group() as group:
        group.start_soon(backend.run)
        with anyio.move_on_after(timeout_s):
            await backend.wait_ready()
        tools = dict(backend.tools) if backend.running else None
        group.cancel_scope.cancel()
    if tools is None:
        why = backend.last_error or "no answer"
        raise ListingError(f"MCP server {spec.name!r} did not start in {timeout_s:g}s: {why}")
    return tuple(  # tools as plain JSON (mcpproxy/listing.py: checked, the stored form)
        ToolInfo(t["name"], t.get("description", ""), _schema(t["inputSchema"]))
        for t in sorted(tools.values(), key=lambda t: t["name"])
    )


def _schema(schema: Any) -> Mapping[str, Any]:
    return schema if isinstance(schema, Mapping) else {}


async def list_all(
    specs: tuple[BackendSpec, ...], timeout_s: float = 30.0
) -> dict[str, tuple[ToolInfo, ...]]:
    """All servers at once (start-up dominates); the result keeps the file's order."""
    found: dict[str, tuple[ToolInfo, ...]] = {}
    errors: list[str] = []

    async def one(spec: BackendSpec) -> None:
        try:
            found[spec.name] = await _one(spec, timeout_s)
        except ListingError as exc:
            errors.append(str(exc))

    async with anyio.create_task_group() as group:
        for spec in specs:
            group.start_soon(one, spec)
    if errors:
        raise ListingError("; ".join(sorted(errors)))
    return {spec.name: found[spec.name] for spec in specs}


async def call_tool(
    spec: BackendSpec, tool: str, arguments: Mapping[str, Any], timeout_s: float = 30.0
) -> str:
    """One tool call on one server (dynamic lists): the text of its result."""
    backend = Backend(spec, backoff_min_s=0.2, backoff_max_s=1.0)
    result = None
    async with anyio.create_task_group() as group:
        group.start_soon(backend.run)
        with anyio.move_on_after(timeout_s):
            await backend.wait_ready()
            result = await backend.call(tool, arguments, timeout_s)
        group.cancel_scope.cancel()
    if result is None:
        why = backend.last_error or "no answer"
        raise ListingError(f"MCP server {spec.name!r}: no answer from {tool} ({why})")
    if result.is_error:
        raise ListingError(f"MCP server {spec.name!r}: {tool} failed")
    return "\n".join(getattr(c, "text", "") for c in result.content)
