"""The hash chain, pure: how a record becomes a line, and how a file of lines is checked.

Each line is canonical JSON (sorted keys, no spaces) holding `seq` (0, 1, 2, ...), `prev` (the
SHA-256 of the previous line's bytes, or GENESIS for the first) and the record. Editing a line
breaks the `prev` of the next one; removing lines breaks `seq`/`prev`; cutting lines off the end
is caught against the head (the writer's note of the last line's seq and hash, kept beside the log).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


def digest(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def seal(seq: int, prev: str, record: Mapping[str, Any]) -> bytes:
    """The line (without newline) for `record` at position `seq` after a line hashing to `prev`."""
    if "seq" in record or "prev" in record:
        raise ValueError("a record may not set seq or prev")
    body = {"seq": seq, "prev": prev, **record}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    hash: str

    def encode(self) -> bytes:
        return f"{self.seq:020d} {self.hash}\n".encode()

    @classmethod
    def decode(cls, data: bytes) -> Head:
        seq, _, value = data.decode("ascii").strip().partition(" ")
        if len(value) != 64 or not seq.isdigit():
            raise ValueError("malformed head")
        return cls(int(seq), value)


@dataclass(frozen=True, slots=True)
class Report:
    ok: bool
    lines: int
    problem: str = ""  # what is wrong, with the line number (1-based)
    note: str = ""  # not tampering, but worth saying (e.g. head behind after a crash)


def verify(lines: Sequence[bytes], head: Head | None) -> Report:
    """Check the chain line by line, then against the head (None: no head file was found)."""
    prev, count = GENESIS, 0
    for number, raw in enumerate(lines, start=1):
        if not raw.endswith(b"\n"):
            return Report(False, count, f"line {number}: incomplete (no newline): truncated or cut")
        line = raw[:-1]
        try:
            body = json.loads(line)
        except ValueError:
            return Report(False, count, f"line {number}: not JSON")
        if not isinstance(body, dict) or body.get("seq") != number - 1:
            return Report(False, count, f"line {number}: sequence broken (lines removed or moved)")
        if body.get("prev") != prev:
            return Report(
                False, count, f"line {number}: previous-hash mismatch (line {number - 1} edited)"
            )
        if (
            seal(number - 1, prev, {k: v for k, v in body.items() if k not in ("seq", "prev")})
            != line
        ):
            return Report(False, count, f"line {number}: not in canonical form (edited)")
        prev, count = digest(line), number
    if head is None:
        return Report(False, count, "no head file: cannot tell whether the end was cut off")
    if head.seq >= count:
        return Report(False, count, f"truncated: the head says line {head.seq + 1} was written")
    if head.seq >= 0 and _hash_at(lines, head.seq) != head.hash:
        return Report(False, count, f"line {head.seq + 1}: does not match the head (edited)")
    note = "" if head.seq == count - 1 else "the head lags the log (unclean shutdown?)"
    return Report(True, count, note=note)


def _hash_at(lines: Sequence[bytes], seq: int) -> str:
    return digest(lines[seq][:-1])
