"""What a backend's notifications may say to a client: rebuilt field by field, bounded.

A notification is never forwarded in the form the backend wrote it. Each method the proxy relays
has an allowlist of fields, each field's type is checked, strings are cut, and the message the
client receives is built here from what was checked (any other field, `_meta` included, is
dropped); a notification that does not fit is dropped whole. Pure functions, no I/O.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

MAX_MESSAGE_CHARS = 1000  # a progress message: one line of status
MAX_LOGGER_CHARS = 100
MAX_LOG_DATA_CHARS = 8 * 1024  # a log entry's data, as JSON text; past it the text is cut
MAX_URI_CHARS = 2048
MAX_TOKEN_CHARS = 200  # a client's progress token
# Ascending severity (RFC 5424 as MCP names them): a client's level keeps those at or above it.
LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
PROGRESS = "notifications/progress"
LOG = "notifications/message"
UPDATED = "notifications/resources/updated"
CUT = " [cut by IronCurtain]"


def _number(value: object) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def client_token(meta: object) -> str | int | None:
    """The progress token a client gave in a request's `_meta`, if it is one we can answer."""
    if not isinstance(meta, Mapping):
        return None
    token = meta.get("progressToken")
    if isinstance(token, bool):
        return None
    if isinstance(token, int) or (isinstance(token, str) and 0 < len(token) <= MAX_TOKEN_CHARS):
        return token
    return None


def progress(params: object, token: str | int) -> dict[str, Any] | None:
    """`notifications/progress` for the client, under the client's own `token`."""
    if not isinstance(params, Mapping):
        return None
    done = _number(params.get("progress"))
    if done is None:
        return None
    out: dict[str, Any] = {"progressToken": token, "progress": done}
    if params.get("total") is not None:
        total = _number(params.get("total"))
        if total is None:
            return None
        out["total"] = total
    message = params.get("message")
    if message is not None:
        if not isinstance(message, str):
            return None
        out["message"] = message[:MAX_MESSAGE_CHARS]
    return {"jsonrpc": "2.0", "method": PROGRESS, "params": out}


def log(params: object, floor: str) -> dict[str, Any] | None:
    """`notifications/message` for a client whose level is `floor`; None below it."""
    if not isinstance(params, Mapping):
        return None
    level = params.get("level")
    if not isinstance(level, str) or level not in LEVELS:
        return None
    if LEVELS.index(level) < LEVELS.index(floor):
        return None
    out: dict[str, Any] = {"level": level}
    logger = params.get("logger")
    if logger is not None:
        if not isinstance(logger, str):
            return None
        out["logger"] = logger[:MAX_LOGGER_CHARS]
    if "data" not in params:
        return None
    data = params["data"]
    try:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    except (ValueError, TypeError, RecursionError):
        return None
    if len(text) > MAX_LOG_DATA_CHARS:  # too large as it is: its start, as text, marked cut
        data = text[:MAX_LOG_DATA_CHARS] + CUT
    out["data"] = data
    return {"jsonrpc": "2.0", "method": LOG, "params": out}


def updated(params: object) -> tuple[str, dict[str, Any]] | None:
    """(uri, `notifications/resources/updated`), the URI as the backend wrote it."""
    if not isinstance(params, Mapping):
        return None
    uri = params.get("uri")
    if not isinstance(uri, str) or not uri or len(uri) > MAX_URI_CHARS:
        return None
    return uri, {"jsonrpc": "2.0", "method": UPDATED, "params": {"uri": uri}}


def sse(message: Mapping[str, Any]) -> bytes | None:
    """One server-sent event carrying one JSON-RPC message (JSON text has no raw newline)."""
    try:
        data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
    except (ValueError, TypeError, RecursionError, UnicodeEncodeError):
        return None
    return b"event: message\ndata: " + data + b"\n\n"


# -- a backend's requests to the client (sampling, elicitation) and the client's answers --------

SAMPLING = "sampling/createMessage"
ELICITATION = "elicitation/create"
CAPABILITY = {SAMPLING: "sampling", ELICITATION: "elicitation"}  # the client's capability names
MAX_REQUEST_CHARS = 256 * 1024  # a server's request, or a client's answer, as JSON text
MAX_TEXT_CHARS = 64 * 1024  # one text: a prompt, a question, an answer
MAX_ITEMS = 100  # messages, content blocks, schema properties, enum values
_ROLES = frozenset({"user", "assistant"})
_MEDIA = frozenset({"image", "audio"})
# What an elicitation form's property may say (MCP's restricted JSON Schema, SEP-1034/1330).
_PROPERTY_KEYS = frozenset(
    {
        "type",
        "title",
        "description",
        "default",
        "enum",
        "enumNames",
        "oneOf",
        "anyOf",
        "items",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "format",
        "const",
    }
)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and len(value) <= MAX_TEXT_CHARS else None


def _fits(value: object) -> bool:
    try:
        return len(json.dumps(value, ensure_ascii=False)) <= MAX_REQUEST_CHARS
    except (ValueError, TypeError, RecursionError):
        return False


def _block(value: object) -> dict[str, Any] | None:
    """One content block of a sampling message: text, image or audio, rebuilt."""
    if not isinstance(value, Mapping):
        return None
    kind = value.get("type")
    if kind == "text":
        text = _text(value.get("text"))
        return None if text is None else {"type": "text", "text": text}
    if kind in _MEDIA:
        data, mime = value.get("data"), value.get("mimeType")
        if isinstance(data, str) and isinstance(mime, str) and len(mime) <= 100:
            return {"type": kind, "data": data, "mimeType": mime}
    return None


def _content(value: object) -> dict[str, Any] | list[dict[str, Any]] | None:
    if isinstance(value, list):
        blocks = [_block(b) for b in value[:MAX_ITEMS]]
        if not blocks or len(value) > MAX_ITEMS or any(b is None for b in blocks):
            return None
        return [b for b in blocks if b is not None]
    return _block(value)


def _sampling(params: Mapping[str, Any]) -> dict[str, Any] | None:
    messages = params.get("messages")
    max_tokens = params.get("maxTokens")
    if not isinstance(messages, list) or not 0 < len(messages) <= MAX_ITEMS:
        return None
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
        return None
    built = []
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role") not in _ROLES:
            return None
        content = _content(message.get("content"))
        if content is None:
            return None
        built.append({"role": message["role"], "content": content})
    out: dict[str, Any] = {"messages": built, "maxTokens": max_tokens}
    # includeContext is never passed: it asks the client for what other servers said.
    if params.get("systemPrompt") is not None:
        prompt = _text(params.get("systemPrompt"))
        if prompt is None:
            return None
        out["systemPrompt"] = prompt
    if params.get("temperature") is not None:
        temperature = _number(params.get("temperature"))
        if temperature is None:
            return None
        out["temperature"] = temperature
    stops = params.get("stopSequences")
    if stops is not None:
        if not isinstance(stops, list) or len(stops) > MAX_ITEMS:
            return None
        if not all(isinstance(x, str) and len(x) <= MAX_MESSAGE_CHARS for x in stops):
            return None
        out["stopSequences"] = list(stops)
    return out


def _property(value: object) -> dict[str, Any] | None:
    if not isinstance(value, Mapping):
        return None
    return {k: v for k, v in value.items() if k in _PROPERTY_KEYS}


def _elicitation(params: Mapping[str, Any]) -> dict[str, Any] | None:
    # Form mode only: url mode sends the user to a page the backend names.
    if params.get("mode", "form") != "form":
        return None
    message = _text(params.get("message"))
    schema = params.get("requestedSchema")
    if message is None or not isinstance(schema, Mapping) or schema.get("type") != "object":
        return None
    properties = schema.get("properties")
    if not isinstance(properties, Mapping) or len(properties) > MAX_ITEMS:
        return None
    built: dict[str, Any] = {}
    for name, value in properties.items():
        prop = _property(value)
        if prop is None or len(name) > MAX_LOGGER_CHARS:
            return None
        built[name] = prop
    out_schema: dict[str, Any] = {"type": "object", "properties": built}
    required = schema.get("required")
    if required is not None:
        if not isinstance(required, list) or not all(r in built for r in required):
            return None
        out_schema["required"] = list(required)
    return {"message": message, "requestedSchema": out_schema}


def server_request(method: str, params: object) -> dict[str, Any] | None:
    """The params of a backend's sampling or elicitation request, rebuilt for the client."""
    if not isinstance(params, Mapping):
        return None
    built = _sampling(params) if method == SAMPLING else None
    if method == ELICITATION:
        built = _elicitation(params)
    return built if built is not None and _fits(built) else None


def client_result(method: str, result: object) -> dict[str, Any] | None:
    """The client's answer to a forwarded request, rebuilt for the backend."""
    if not isinstance(result, Mapping) or not _fits(result):
        return None
    if method == SAMPLING:
        content = _content(result.get("content"))
        model = result.get("model")
        if result.get("role") not in _ROLES or content is None or not isinstance(model, str):
            return None
        out: dict[str, Any] = {"role": result["role"], "content": content, "model": model[:200]}
        if isinstance(result.get("stopReason"), str):
            out["stopReason"] = result["stopReason"][:100]
        return out
    if method == ELICITATION:
        action = result.get("action")
        if action not in ("accept", "decline", "cancel"):
            return None
        if action != "accept":
            return {"action": action}
        content = result.get("content")
        if not isinstance(content, Mapping) or len(content) > MAX_ITEMS:
            return None
        answers: dict[str, Any] = {}
        for name, value in content.items():
            plain = isinstance(value, (str, bool)) or _number(value) is not None
            strings = isinstance(value, list) and all(isinstance(x, str) for x in value)
            if not (plain or strings) or (isinstance(value, str) and len(value) > MAX_TEXT_CHARS):
                return None
            answers[name] = value
        return {"action": "accept", "content": answers}
    return None
