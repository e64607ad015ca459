"""Request-body rewrite: strip vendor-side tools so the vendor cannot act outside our policy."""

from __future__ import annotations

import json

from .errors import Refusal


def strip_server_tools(
    body: bytes, client_types: tuple[str, ...] = ("custom",)
) -> tuple[bytes, int]:
    """Remove every `tools[]` entry whose `type` is set and not a client type, and `mcp_servers`.

    Anthropic's server tools (web search, web fetch, code execution, ...) carry a versioned `type`;
    client tools have none (or "custom"). OpenAI's client tools are "function" (and "custom");
    web_search, file_search, code_interpreter, mcp, ... run on the vendor's side. Returns (body,
    how many were removed); the body is returned byte-identical when nothing is removed. A body
    that does not parse is refused.
    """
    if not body:
        return body, 0
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Refusal(
            400, "rewrite", "request body is not valid JSON; it cannot be checked"
        ) from None
    if not isinstance(doc, dict):
        raise Refusal(400, "rewrite", "request body is not a JSON object")
    removed = 0
    # The MCP connector makes the vendor's servers call URLs for the agent: never allowed.
    if "mcp_servers" in doc:
        servers = doc.pop("mcp_servers")
        removed += len(servers) if isinstance(servers, list) else 1
    tools = doc.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise Refusal(400, "rewrite", "'tools' must be a list of objects")
        kept = [t for t in tools if t.get("type") is None or t.get("type") in client_types]
        removed += len(tools) - len(kept)
        doc["tools"] = kept
        if not kept:
            del doc["tools"]
            # A tool_choice naming a removed tool would now be rejected upstream; drop it too.
            doc.pop("tool_choice", None)
    if not removed:
        return body, 0
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode(), removed
