"""JSON-RPC 2.0 messages as MCP carries them, parsed and written without I/O.

One message per body (MCP dropped batches in 2025-06-18; the SDK refuses them on every version),
parameters always an object, ids strings or integers (MCP: never null). Anything else is an
`RpcError` that carries the JSON-RPC code, the request id when one could be read, and the HTTP
status a Streamable HTTP server answers it with.

The body is read strictly (RFC 8259 as interoperable JSON, I-JSON RFC 7493): UTF-8 only, no
NaN / Infinity (nor a number too large for a double), no lone surrogate (escaped or raw), no
duplicate key in an object, nesting at most `MAX_DEPTH` deep (`ironcurtain.strictjson`, shared
with the MITM). Python's json module accepts all of these; each one reached a backend or crashed
a later step before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .. import strictjson
from ..strictjson import StrictJSONError

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

MAX_DEPTH = 64  # arrays and objects, the envelope included; tool arguments are shallow

RequestId = str | int


@dataclass(frozen=True, slots=True)
class Request:
    id: RequestId
    method: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Notification:
    method: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Response:
    """A result or error the client posts back: its answer to a backend's request the proxy
    forwarded (sampling, elicitation: streams.py), else answered 202 and dropped."""

    id: RequestId
    result: Any = None
    error: Any = None


Message = Request | Notification | Response


class RpcError(Exception):
    """A JSON-RPC error to answer with; `status` is the HTTP status hint for the transport."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        id: RequestId | None = None,
        data: Any = None,
        status: int = 400,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.id = id
        self.data = data
        self.status = status

    def body(self) -> bytes:
        return error_body(self.id, self.code, self.message, self.data)


def _valid_id(value: object) -> bool:
    # bool is an int subclass; JSON true/false is not an id.
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _why(exc: StrictJSONError) -> str:
    if exc.kind == "not_utf8":
        return "the body is not UTF-8"
    if exc.kind == "constant":
        return f"{exc.token} is not a JSON number"
    if exc.kind == "out_of_range":
        return f"the number {(exc.token or '')[:40]} is too large for a double"
    if exc.kind == "duplicate_key":
        return f"the key {(exc.key or '')[:40]!r} appears twice in one object"
    if exc.kind == "lone_surrogate":
        where = "a string" if exc.key is None else "a key"
        return f"{where} holds a lone surrogate (not a Unicode character)"
    if exc.kind == "too_deep":
        return f"nested more than {MAX_DEPTH} deep"
    return "the body is not valid JSON"


def parse_json(body: bytes) -> Any:
    """The body as JSON, strictly (see the module doc), or RpcError PARSE_ERROR saying why."""
    try:
        return strictjson.loads(body, max_depth=MAX_DEPTH)
    except StrictJSONError as exc:
        raise RpcError(PARSE_ERROR, f"Parse error: {_why(exc)}") from None


def parse_message(body: bytes) -> Message:
    """One JSON-RPC message from a request body, or RpcError saying what is wrong with it."""
    return message_from(parse_json(body))


def message_from(decoded: object) -> Message:
    if isinstance(decoded, list):
        raise RpcError(INVALID_REQUEST, "Invalid request: batches are not supported")
    if not isinstance(decoded, dict):
        raise RpcError(INVALID_REQUEST, "Invalid request: the body must be one JSON-RPC object")
    raw_id = decoded.get("id")
    has_id = "id" in decoded
    if has_id and not _valid_id(raw_id):
        raise RpcError(INVALID_REQUEST, "Invalid request: id must be a string or an integer")
    request_id = raw_id if has_id else None
    if decoded.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'Invalid request: jsonrpc must be "2.0"', id=request_id)
    if "method" not in decoded:
        if has_id and (("result" in decoded) != ("error" in decoded)):
            return Response(raw_id, decoded.get("result"), decoded.get("error"))  # type: ignore[arg-type]
        raise RpcError(
            INVALID_REQUEST, "Invalid request: neither a request nor a response", id=request_id
        )
    method = decoded["method"]
    if not isinstance(method, str) or not method:
        raise RpcError(INVALID_REQUEST, "Invalid request: method must be a string", id=request_id)
    params = decoded.get("params")
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        raise RpcError(INVALID_REQUEST, "Invalid request: params must be an object", id=request_id)
    if has_id:
        return Request(raw_id, method, params)  # type: ignore[arg-type]  # checked by _valid_id
    return Notification(method, params)


def _dumps(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def result_body(request_id: RequestId, result: dict[str, Any]) -> bytes:
    return _dumps({"jsonrpc": "2.0", "id": request_id, "result": result})


def error_body(request_id: RequestId | None, code: int, message: str, data: Any = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    # `id: null` must be on the wire when the request's id could not be read.
    return _dumps({"jsonrpc": "2.0", "id": request_id, "error": error})
