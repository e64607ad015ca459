"""A session's Redis budget, as arithmetic: which of its keys count, their sizes, the limits.

Pure: the watcher (watcher.py) feeds it what Redis reports (a key changed; MEMORY USAGE of that
key) and acts on the breach it returns. Redis has no per-user quota and the team Redis refuses
every write once full (noeviction), so one session filling it would stop every session's
escalations and every decision: `ironcurtain run` ends a session that goes over its budget.

What counts is what a session's own user can create (acl.session_rules): its records, its
pending set, and (were its ACL ever widened) its wake lists. Keys written by trusted services
in its space (decisions, the auto-reviewer's, handled markers, remembered scopes, its
registration, its auto-review switch) are not its to grow: each decision or marker belongs to
one of its records, so the record count bounds them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from . import redis_keys

MIB = 1024 * 1024
DEFAULT_KEYS = 2000
DEFAULT_BYTES = 16 * MIB
# A proxy holds one connection per waiting escalation (at most 32, escalator.py) and `run` two
# or three; each connection's buffers (unread commands, unread replies) are Redis's memory too.
DEFAULT_CONNECTIONS = 100
DEFAULT_CONNECTION_BYTES = 32 * MIB
KEYS_VARIABLE = "IRONCURTAIN_REDIS_BUDGET_KEYS"
BYTES_VARIABLE = "IRONCURTAIN_REDIS_BUDGET_MIB"
# The kinds of key a session's user writes (its MCP proxy): after `ironcurtain:esc:s:<id>:`,
# prefixes and one exact name (the ACL's patterns, acl.session_rules).
COUNTED = ("record:", "wake:")
COUNTED_EXACTLY = (b"pending",)
_NUMBER = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of the team Redis one session may hold: keys, and bytes as MEMORY USAGE says."""

    keys: int = DEFAULT_KEYS
    bytes: int = DEFAULT_BYTES
    connections: int = DEFAULT_CONNECTIONS
    connection_bytes: int = DEFAULT_CONNECTION_BYTES

    def __post_init__(self) -> None:
        if self.keys < 1 or self.bytes < MIB:
            raise ValueError("a Redis budget needs at least 1 key and 1 MiB")
        if self.connections < 4 or self.connection_bytes < MIB:
            raise ValueError("a Redis budget needs at least 4 connections and 1 MiB for them")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Limits:
        """`IRONCURTAIN_REDIS_BUDGET_KEYS` and `IRONCURTAIN_REDIS_BUDGET_MIB`; ValueError for a
        value that is not a whole number."""
        keys = _number(environ, KEYS_VARIABLE, DEFAULT_KEYS)
        mib = _number(environ, BYTES_VARIABLE, DEFAULT_BYTES // MIB)
        return cls(keys, mib * MIB)  # the connection limits: the defaults

    def describe(self) -> str:
        return (
            f"{self.keys} keys, {self.bytes // MIB} MiB; {self.connections} connections, "
            f"{self.connection_bytes // MIB} MiB in their buffers"
        )


def _number(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not _NUMBER.fullmatch(raw):
        raise ValueError(f"{name} must be a whole number, not {raw[:40]!r}")
    return int(raw)


@dataclass(frozen=True, slots=True)
class Breach:
    """Which limit a session went over, with what it holds."""

    limit: str  # "keys", "bytes", "connections" or "connection bytes"
    used: int
    allowed: int

    def describe(self) -> str:
        if self.limit in ("keys", "connections"):
            return f"{self.used} {self.limit}, more than its {self.allowed}"
        what = " in its connections' buffers" if self.limit == "connection bytes" else ""
        return f"{_mib(self.used)} MiB{what}, more than its {_mib(self.allowed)} MiB"


def _mib(n: int) -> str:
    return f"{n / MIB:.1f}".removesuffix(".0")


def connections(listing: Iterable[Mapping[str, str]], user: str) -> tuple[int, int]:
    """From CLIENT LIST (one mapping of fields per connection, as redis-py parses it): how many
    connections `user` holds and their memory (`tot-mem`: buffers, arguments, the client)."""
    count = memory = 0
    for client in listing:
        if client.get("user") != user:
            continue
        count += 1
        found = str(client.get("tot-mem", ""))
        memory += int(found) if found.isdigit() else 0
    return count, memory


def connections_breach(limits: Limits, count: int, memory: int) -> Breach | None:
    if count > limits.connections:
        return Breach("connections", count, limits.connections)
    if memory > limits.connection_bytes:
        return Breach("connection bytes", memory, limits.connection_bytes)
    return None


def counted(session_id: str, key: bytes) -> bool:
    """Whether a key of the session's space counts against its budget (a key of another
    session, or none of ours, never does: the watcher only hears of its own)."""
    head = redis_keys.space(session_id).encode()
    if not key.startswith(head):
        return False
    rest = key[len(head) :]
    return rest in COUNTED_EXACTLY or any(rest.startswith(kind.encode()) for kind in COUNTED)


class Footprint:
    """What one session holds: key -> bytes, as last measured. Each measurement replaces the
    key's size (None: the key is gone), so a missed or forged notification costs only a
    measurement, never a wrong total: sizes come from Redis, not from what an event claims."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._sizes: dict[bytes, int] = {}
        self._total = 0

    @property
    def keys(self) -> int:
        return len(self._sizes)

    @property
    def total(self) -> int:
        """Bytes held, as last measured."""
        return self._total

    def measured(self, key: bytes, size: int | None) -> Breach | None:
        """Record a key's size now; the breach this makes, if any."""
        self._total -= self._sizes.pop(key, 0)
        if size is not None:
            if size < 0:
                raise ValueError(f"a negative size for {key[:80]!r}")
            self._sizes[key] = size
            self._total += size
        return self.breach()

    def breach(self) -> Breach | None:
        if self.keys > self.limits.keys:
            return Breach("keys", self.keys, self.limits.keys)
        if self._total > self.limits.bytes:
            return Breach("bytes", self._total, self.limits.bytes)
        return None

    def forget(self) -> None:
        """Redis lost its data (a restart: no persistence): nothing is held any more."""
        self._sizes.clear()
        self._total = 0
