"""The keyed chain, pure: how a record becomes a line, and how a stream of lines is checked.

Each line is canonical JSON (sorted keys, no spaces, ASCII) holding `seq` (0, 1, 2, ...), `prev`
(the HMAC-SHA256, under the log's key, of the previous line's bytes, or GENESIS for the first)
and the record. Editing a line breaks the `prev` of the next one; removing lines breaks
`seq`/`prev`; and since every `prev` needs the key, whoever can write the log but does not hold
the key cannot recompute the chain after an edit. The last line's MAC is in no line: the writer
notes it in the head beside the log, and the host copies heads into checkpoints where no
container can write (anchor.py), so cutting lines off the end is caught too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .bound import DEFAULT, Limits

GENESIS = "0" * 64
KEY_BYTES = 32
HEAD_BYTES = 86  # Head.encode(): 20 digits, a space, 64 hex digits, a newline


def mac(key: bytes, line: bytes) -> str:
    """The MAC of one line (without its newline)."""
    return hmac.digest(key, line, "sha256").hex()


def _encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def seal(seq: int, prev: str, record: Mapping[str, Any], limits: Limits = DEFAULT) -> bytes:
    """The line (without newline) for `record` at position `seq` after a line whose MAC is
    `prev`. A record whose line would pass `limits.line` is replaced by a summary of it (its
    event, size and hash), so no line is ever longer: the record should be `bounded()` first."""
    if "seq" in record or "prev" in record:
        raise ValueError("a record may not set seq or prev")
    line = _encode({"seq": seq, "prev": prev, **record})
    if len(line) <= limits.line:
        return line
    summary = {
        "seq": seq,
        "prev": prev,
        "event": str(record.get("event", ""))[:64],
        "oversize": {"bytes": len(line), "sha256": hashlib.sha256(line).hexdigest()},
    }
    return _encode(summary)


@dataclass(frozen=True, slots=True)
class Head:
    """A position in the chain: the last line's seq and its MAC (seq -1: nothing written)."""

    seq: int
    mac: str

    def encode(self) -> bytes:
        return f"{self.seq:020d} {self.mac}\n".encode()

    @classmethod
    def decode(cls, data: bytes) -> Head:
        seq, _, value = data.decode("ascii").strip().partition(" ")
        if len(value) != 64 or not seq.isdigit() or not all(c in "0123456789abcdef" for c in value):
            raise ValueError("malformed head")
        return cls(int(seq), value)


NOTHING = Head(-1, GENESIS)


@dataclass(frozen=True, slots=True)
class Report:
    ok: bool
    lines: int
    problem: str = ""  # what is wrong, with the line number (1-based)
    note: str = ""  # not tampering, but worth saying (e.g. head behind after a crash)


def verify(
    lines: Iterable[bytes],
    key: bytes,
    head: Head | None,
    checkpoints: Sequence[Head] | None = None,
    limits: Limits = DEFAULT,
) -> Report:
    """Check the chain line by line (a stream: any size of log in bounded memory), then against
    the head (None: no head file) and the checkpoints (None: none kept for this log)."""
    wanted = {c.seq: c.mac for c in checkpoints or ()}
    if head is not None and head.seq >= 0:
        wanted.setdefault(head.seq, head.mac)
    prev, count = GENESIS, 0
    for number, raw in enumerate(lines, start=1):
        if not raw.endswith(b"\n"):
            if len(raw) > limits.line:
                return Report(False, count, f"line {number}: longer than {limits.line} bytes")
            return Report(False, count, f"line {number}: incomplete (no newline): truncated or cut")
        line = raw[:-1]
        try:
            body = json.loads(line)
        except (ValueError, RecursionError):
            return Report(False, count, f"line {number}: not JSON")
        if not isinstance(body, dict) or body.get("seq") != number - 1:
            return Report(False, count, f"line {number}: sequence broken (lines removed or moved)")
        if body.get("prev") != prev:
            return Report(
                False,
                count,
                f"line {number}: previous-MAC mismatch (line {number - 1} edited, "
                "or the chain recomputed without the key)",
            )
        record = {k: v for k, v in body.items() if k not in ("seq", "prev")}
        try:
            canonical = seal(number - 1, prev, record, limits) == line
        except ValueError:
            canonical = False
        if not canonical:
            return Report(False, count, f"line {number}: not in canonical form (edited)")
        prev, count = mac(key, line), number
        expected = wanted.get(number - 1)
        if expected is not None and not hmac.compare_digest(expected, prev):
            source = "a checkpoint" if head is None or head.seq != number - 1 else "the head"
            return Report(
                False, count, f"line {number}: does not match {source} (edited, or another key)"
            )
    furthest = max(wanted, default=-1)
    if furthest >= count:
        return Report(False, count, f"truncated: line {furthest + 1} was written and is gone")
    if head is None:
        return Report(False, count, "no head file: cannot tell whether the end was cut off")
    notes = []
    if head.seq != count - 1:
        notes.append("the head lags the log (unclean shutdown?)")
    if checkpoints is None:
        notes.append("no checkpoints: the end is checked against the head beside the log only")
    elif max((c.seq for c in checkpoints), default=-1) < count - 1:
        notes.append(f"lines after {furthest + 1} were written after the last checkpoint")
    return Report(True, count, note="; ".join(notes))
