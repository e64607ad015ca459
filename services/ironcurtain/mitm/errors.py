"""Refusals that carry what to answer, and the providers' own error JSON shapes.

A refusal never echoes what the agent sent beyond a short, plain name: h11's error text (it
quotes raw header bytes), query strings and the addresses we dial stay out, and every reason
and audited field is bounded (`bounded`), so a refusal's audit line stays small whatever the
request was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import h11

from .providers import ErrorShape

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    502: "api_error",
    504: "timeout_error",
}
_OPENAI_TYPES = {401: "invalid_request_error", 403: "permission_denied", 502: "server_error"}
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    502: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


REASON_LIMIT = 300  # characters of a refusal's reason
FIELD_LIMIT = 253  # characters of an audited host, path or method (a DNS name's maximum)


def bounded(text: str, limit: int = FIELD_LIMIT) -> str:
    """`text` cut to `limit` characters, marked when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def http_error(exc: h11.RemoteProtocolError) -> Refusal:
    """A malformed request, answered without h11's text (which quotes the raw bytes)."""
    status = exc.error_status_hint
    if status == 431:
        return Refusal(431, "http", "request head too large")
    return Refusal(status, "http", "malformed HTTP/1.1 request (the bytes are not shown)")


@dataclass(eq=False)
class Refusal(Exception):
    """Raised anywhere in request handling; the server answers `status` and audits `rule`."""

    status: int
    rule: str  # short machine-readable code, e.g. "endpoint", "key", "budget:tokens"
    reason: str  # one line for humans; never contains a key
    flag: str | None = None  # extra audit marker, e.g. "foreign_fake_key"

    def __post_init__(self) -> None:
        self.reason = bounded(self.reason, REASON_LIMIT)

    def __str__(self) -> str:
        return f"{self.status} {self.rule}: {self.reason}"


def body(shape: ErrorShape, status: int, message: str) -> bytes:
    """The JSON error body the provider itself would send, so SDKs surface `message` as-is."""
    message = f"IronCurtain: {message}"
    if shape is ErrorShape.ANTHROPIC:
        kind = _ANTHROPIC_TYPES.get(status, "api_error")
        doc: object = {"type": "error", "error": {"type": kind, "message": message}}
    elif shape is ErrorShape.GOOGLE:
        doc = {
            "error": {
                "code": status,
                "message": message,
                "status": _GOOGLE_STATUS.get(status, "INTERNAL"),
            }
        }
    else:
        kind = _OPENAI_TYPES.get(status, "invalid_request_error")
        doc = {"error": {"message": message, "type": kind, "param": None, "code": "ironcurtain"}}
    return json.dumps(doc, separators=(",", ":")).encode()
