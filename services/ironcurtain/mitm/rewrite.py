"""Request-body rewrite: strip vendor-side tools so the vendor cannot act outside our policy."""

from __future__ import annotations

import json

from .errors import Refusal


def strip_server_tools(body: bytes) -> tuple[bytes, int]:
    """Remove every `tools[]` entry whose `type` is set and is not "custom".

    Anthropic's server tools (web search, web fetch, code execution, ...) carry a versioned `type`;
    client tools have none (or "custom"). Returns (body, how many were removed); the body is
    returned byte-identical when nothing is removed. A body that does not parse is refused.
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
    tools = doc.get("tools")
    if tools is None:
        return body, 0
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise Refusal(400, "rewrite", "'tools' must be a list of objects")
    kept = [t for t in tools if t.get("type") in (None, "custom")]
    removed = len(tools) - len(kept)
    if not removed:
        return body, 0
    doc["tools"] = kept
    if not kept:
        del doc["tools"]
        # A tool_choice naming a removed tool would now be rejected upstream; drop it too.
        doc.pop("tool_choice", None)
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode(), removed
