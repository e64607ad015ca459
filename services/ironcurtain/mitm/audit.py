"""The audit trail: one JSON line per decision, never bodies or keys."""

from __future__ import annotations

import json
import operator
import os
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TextIO


@dataclass(frozen=True, slots=True)
class Entry:
    session: str
    event: str  # "connect" | "request" | "response"
    decision: str  # "allow" | "refuse" | "local" | "done" | "error"
    rule: str  # which rule decided (endpoint glob or refusal code)
    host: str = ""
    provider: str = ""
    method: str = ""
    path: str = ""  # normalised path; the query string is never logged
    status: int = 0
    reason: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    duration_ms: float = 0.0
    request_id: str = ""
    flag: str = ""
    package: str = ""  # package registries: name, version and SHA-256 of a served file
    version: str = ""
    sha256: str = ""


_FIELDS = tuple(f.name for f in fields(Entry))
_VALUES = operator.attrgetter(*_FIELDS)  # all fields in one C call, in _FIELDS order
# One encoder for every line: json.dumps with options builds a new encoder on each call.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


class Audit:
    """Appends lines to a file opened once (O_APPEND); each line is flushed before returning."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    @classmethod
    def open(cls, path: Path) -> Audit:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        return cls(os.fdopen(fd, "a", encoding="utf-8", buffering=1))

    def write(self, entry: Entry) -> None:
        record: dict[str, object] = {"time": round(time.time(), 3)}
        # Not dataclasses.asdict: that deep-copies, and this runs twice per request.
        for name, value in zip(_FIELDS, _VALUES(entry), strict=True):
            if value or name == "decision":
                record[name] = value
        self._stream.write(_ENCODE(record) + "\n")
        self._stream.flush()

    def close(self) -> None:
        self._stream.close()
