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
