"""The MITM's audit trail: one JSON line per decision, never bodies or keys.

Written through the project's audit module (`ironcurtain.audit.AuditLog`): the same keyed chain,
the same bounds on every line, the same head and host checkpoints as the MCP door, so
`ironcurtain audit verify` covers this log too. A line that lets something through (an allowed
request, a local answer, a served package) is on disk before the request is forwarded; a
refusal or a response line is after the fact and reaches the disk with the next synced line.
A log that cannot be written raises AuditError: the connection ends, nothing is forwarded.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, fields
from pathlib import Path

from ..audit import AuditLog, new_key

_AFTER_THE_FACT = frozenset({"refuse", "done", "error", "cancelled"})


@dataclass(frozen=True, slots=True)
class Entry:
    session: str
    event: str  # "connect" | "request" | "response"
    decision: str  # "allow" | "refuse" | "local" | "done" | "error" | "cancelled" | "limit"
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
    model: str = ""  # the model the vendor reported (responses), bounded
    priced_as: str = ""  # the price entry's glob that priced it; "*" is the fallback
    bytes_in: int = 0
    bytes_out: int = 0
    duration_ms: float = 0.0
    request_id: str = ""
    flag: str = ""
    count: int = 0  # a rate-limit summary: how many lines it stands for
    package: str = ""  # package registries: name, version and SHA-256 of a served file
    version: str = ""
    sha256: str = ""


_FIELDS = tuple(f.name for f in fields(Entry))
_VALUES = operator.attrgetter(*_FIELDS)  # all fields in one C call, in _FIELDS order


class Audit:
    """Entries as records of the session's keyed audit log."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    @classmethod
    def open(cls, path: Path, key: bytes | None = None) -> Audit:
        """The log at `path`, chained with `key` (None: a key for this process only, which
        nobody can verify with: tests)."""
        return cls(AuditLog(path, key if key is not None else new_key(), redacting=False))

    def write(self, entry: Entry) -> None:
        # Not dataclasses.asdict: that deep-copies, and this runs twice per request.
        record: dict[str, object] = {}
        for name, value in zip(_FIELDS, _VALUES(entry), strict=True):
            if value or name == "decision":
                record[name] = value
        durable = entry.event != "response" and entry.decision not in _AFTER_THE_FACT
        self._log.append(record, durable=durable)

    def close(self) -> None:
        self._log.close()
