"""Secrets out of audit records: by argument name, and by the shape of well-known tokens."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"

_SECRET_NAMES = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api[-_]?key|auth(orization)?|credential|private[-_]?key|cookie",
    re.IGNORECASE,
)

_PATTERNS = tuple(
    re.compile(p)
    for p in (
        r"(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)",
        r"\bsk-ant-[A-Za-z0-9_\-]{8,}",
        r"\bsk-(proj-)?[A-Za-z0-9_\-]{16,}",
        r"\bgh[pousr]_[A-Za-z0-9]{20,}",
        r"\bgithub_pat_[A-Za-z0-9_]{20,}",
        r"\bglpat-[A-Za-z0-9_\-]{16,}",
        r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",
        r"\b(AKIA|ASIA)[A-Z0-9]{16}\b",
        r"\bAIza[0-9A-Za-z_\-]{30,}",
        r"(?i)\bbearer\s+[A-Za-z0-9._~+/\-]{12,}=*",
        r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",  # JWT
        r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)",  # user:password@ in URLs
    )
)
_QUERY = re.compile(
    r"(?i)([?&](?:access_token|token|api_key|apikey|key|password|secret|sig|signature)=)[^&\s#]+"
)


def redact_text(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    return _QUERY.sub(lambda m: m.group(1) + REDACTED, text)


def redact(value: Any) -> Any:
    """A copy of a JSON-like value with secret-looking parts replaced by [REDACTED]."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED if _SECRET_NAMES.search(str(k)) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value
