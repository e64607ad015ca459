"""Request-body rewrite: strip vendor-side tools so the vendor cannot act outside our policy.

A body that must be rewritten but cannot be parsed is refused (400), never forwarded as is; a body
with nothing to strip is forwarded byte-identical.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import Refusal


def _load(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object (None when empty); anything else is refused."""
    if not body:
        return None
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise Refusal(
            400, "rewrite", "request body is not valid JSON; it cannot be checked"
        ) from None
    if not isinstance(doc, dict):
        raise Refusal(400, "rewrite", "request body is not a JSON object")
    return doc


def _tools(doc: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools = doc.get("tools")
    if tools is not None and (
        not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)
    ):
        raise Refusal(400, "rewrite", "'tools' must be a list of objects")
    return tools


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def strip_server_tools(
    body: bytes, client_types: tuple[str, ...] = ("custom",)
) -> tuple[bytes, int]:
    """Remove every `tools[]` entry whose `type` is set and not a client type, and `mcp_servers`.

    Anthropic's server tools (web search, web fetch, code execution, ...) carry a versioned `type`;
    client tools have none (or "custom"). OpenAI's client tools are "function" (and "custom");
    web_search, file_search, code_interpreter, mcp, ... run on the vendor's side. Returns (body,
    how many were removed).
    """
    doc = _load(body)
    if doc is None:
        return body, 0
    removed = 0
    # The MCP connector makes the vendor's servers call URLs for the agent: never allowed.
    if "mcp_servers" in doc:
        servers = doc.pop("mcp_servers")
        removed += len(servers) if isinstance(servers, list) else 1
    tools = _tools(doc)
    if tools is not None:
        kept = [t for t in tools if t.get("type") is None or t.get("type") in client_types]
        removed += len(tools) - len(kept)
        doc["tools"] = kept
        if not kept:
            del doc["tools"]
            # A tool_choice naming a removed tool would now be rejected upstream; drop it too.
            doc.pop("tool_choice", None)
    return (_dump(doc), removed) if removed else (body, 0)


def strip_gemini_tools(body: bytes) -> tuple[bytes, int]:
    """Google's shape: keep only `tools[]` entries that declare functions (client-side).

    `googleSearch`, `codeExecution`, `urlContext`, ... entries make the vendor act; removed.
    """
    doc = _load(body)
    tools = None if doc is None else _tools(doc)
    if doc is None or tools is None:
        return body, 0
    kept = [t for t in tools if set(t) <= {"functionDeclarations"}]
    removed = len(tools) - len(kept)
    if not removed:
        return body, 0
    doc["tools"] = kept
    if not kept:
        del doc["tools"]
    return _dump(doc), removed
