"""The sidecar's FORWARDS list (`LISTEN:HOST:PORT,...`): parse and render. Pure.

The same rules as images/sidecar/sidecar.sh, so a session refuses a bad declaration before any
container starts: listen ports 1024-65535 (the sidecar is not root), targets by name only, no
port declared twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_HOST = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}"
_ENTRY = re.compile(rf"([0-9]{{1,5}}):({_HOST}):([0-9]{{1,5}})")
_ADDRESS = re.compile(r"[0-9.]+")


class ForwardError(ValueError):
    """A forward the sidecar would refuse."""


@dataclass(frozen=True, slots=True)
class Forward:
    listen: int
    host: str
    port: int

    def __post_init__(self) -> None:
        if not 1024 <= self.listen <= 65535:
            raise ForwardError(f"listen port {self.listen}: use 1024-65535 (non-root)")
        if not 1 <= self.port <= 65535:
            raise ForwardError(f"target port {self.port} is not a TCP port")
        if _ADDRESS.fullmatch(self.host):
            raise ForwardError(f"target '{self.host}': declare services by name, not address")
        if not re.fullmatch(_HOST, self.host):
            raise ForwardError(f"target '{self.host}' is not a service name")

    def __str__(self) -> str:
        return f"{self.listen}:{self.host}:{self.port}"


def parse(raw: str) -> tuple[Forward, ...]:
    forwards: list[Forward] = []
    for part in raw.split(","):
        entry = part.strip()
        if not entry:
            continue
        match = _ENTRY.fullmatch(entry)
        if match is None:
            raise ForwardError(f"malformed forward '{entry}' (want LISTEN_PORT:HOST:PORT)")
        forwards.append(Forward(int(match[1]), match[2], int(match[3])))
    if not forwards:
        raise ForwardError("no FORWARDS declared (LISTEN:HOST:PORT,...)")
    return _unique(forwards)


def _unique(forwards: Iterable[Forward]) -> tuple[Forward, ...]:
    forwards = tuple(forwards)
    seen: set[int] = set()
    for forward in forwards:
        if forward.listen in seen:
            raise ForwardError(f"listen port {forward.listen} is declared twice")
        seen.add(forward.listen)
    return tuple(forwards)


def render(forwards: Iterable[Forward]) -> str:
    """The FORWARDS value for the sidecar's environment."""
    checked = _unique(forwards)
    if not checked:
        raise ForwardError("no FORWARDS declared (LISTEN:HOST:PORT,...)")
    return ",".join(str(forward) for forward in checked)
