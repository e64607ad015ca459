"""JSON-RPC 2.0 messages as MCP carries them, parsed and written without I/O.

One message per body (MCP dropped batches in 2025-06-18; the SDK refuses them on every version),
parameters always an object, ids strings or integers (MCP: never null). Anything else is an
`RpcError` that carries the JSON-RPC code, the request id when one could be read, and the HTTP
status a Streamable HTTP server answers it with.

The body is read strictly (RFC 8259 as interoperable JSON, I-JSON RFC 7493): UTF-8 only, no
NaN / Infinity (nor a number too large for a double), no lone surrogate (escaped or raw), no
duplicate key in an object, nesting at most `MAX_DEPTH` deep. Python's json module accepts all
of these; each one reached a backend or crashed a later step before.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

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
    """A result or error the client posts back (to a server request we never send)."""

    id: RequestId


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


class _Strict(ValueError):
    """Why a body that Python's json module would accept is refused."""


def _constant(name: str) -> float:
    raise _Strict(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Strict(f"the number {text[:40]} is too large for a double")
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):  # readers disagree on which one wins: refuse both
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Strict(f"the key {key[:40]!r} appears twice in one object")
            seen.add(key)
    return result


_SURROGATE = re.compile("[\ud800-\udfff]")
_DECODER = json.JSONDecoder(
    parse_float=_finite, parse_constant=_constant, object_pairs_hook=_object
)


def _check(value: Any, depth: int) -> None:
    """Depth and lone surrogates (json pairs escaped ones; what is left alone is lone)."""
    if depth > MAX_DEPTH:
        raise _Strict(f"nested more than {MAX_DEPTH} deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if _SURROGATE.search(key):
                raise _Strict("a key holds a lone surrogate (not a Unicode character)")
            if isinstance(item, dict | list):
                _check(item, depth + 1)
            elif isinstance(item, str) and _SURROGATE.search(item):
                raise _Strict("a string holds a lone surrogate (not a Unicode character)")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                _check(item, depth + 1)
            elif isinstance(item, str) and _SURROGATE.search(item):
                raise _Strict("a string holds a lone surrogate (not a Unicode character)")
    elif isinstance(value, str) and _SURROGATE.search(value):
        raise _Strict("a string holds a lone surrogate (not a Unicode character)")


def parse_json(body: bytes) -> Any:
    """The body as JSON, strictly (see the module doc), or RpcError PARSE_ERROR saying why."""
    try:
        text = body.decode("utf-8")  # strict: raw surrogates (ED A0 80...) are refused here
    except UnicodeDecodeError:
        raise RpcError(PARSE_ERROR, "Parse error: the body is not UTF-8") from None
    try:
        decoded = _DECODER.decode(text)
        # The walk only when it can find something: a lone surrogate needs a `\u` escape (raw
        # ones failed the decode), depth over the limit needs that many brackets.
        if "\\u" in text or text.count("[") + text.count("{") > MAX_DEPTH:
            _check(decoded, 1 if isinstance(decoded, dict | list) else 0)
    except _Strict as exc:
        raise RpcError(PARSE_ERROR, f"Parse error: {exc}") from None
    except RecursionError:  # deeper than the interpreter's stack, so deeper than the limit
        raise RpcError(PARSE_ERROR, f"Parse error: nested more than {MAX_DEPTH} deep") from None
    except ValueError:  # huge integers are ValueErrors too
        raise RpcError(PARSE_ERROR, "Parse error: the body is not valid JSON") from None
    return decoded


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
            return Response(raw_id)  # type: ignore[arg-type]  # checked by _valid_id
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
