"""Refusals that carry what to answer, and the providers' own error JSON shapes."""

from __future__ import annotations

import json
from dataclasses import dataclass

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


@dataclass(eq=False)
class Refusal(Exception):
    """Raised anywhere in request handling; the server answers `status` and audits `rule`."""

    status: int
    rule: str  # short machine-readable code, e.g. "endpoint", "key", "budget:tokens"
    reason: str  # one line for humans; never contains a key
    flag: str | None = None  # extra audit marker, e.g. "foreign_fake_key"

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
