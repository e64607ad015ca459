"""One request inside a tunnel (`Flow`), and the request as it goes to the vendor (`Outgoing`).

A Flow carries what each step of the request path needs and is filled in as the checks of
checks.py pass (target, endpoint, admitted headers, key, body) and the budget admits it
(reservation); the server's I/O only reads it. Outgoing is built from a fully checked Flow
alone, so nothing the checks did not admit can reach the vendor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import h11

from .budget import Ask
from .paths import Endpoint, Target
from .providers import Provider


@dataclass(slots=True)
class Flow:
    request: h11.Request
    provider: Provider
    host: str  # the tunnel's host
    rid: str  # request id, shared by the request's audit lines
    started: float  # perf_counter at the head
    method: str
    path: str = ""  # normalised path, once the target parsed (audited; never the query)
    target: Target | None = None
    items: list[tuple[bytes, bytes]] = field(default_factory=list)  # request headers, listed
    endpoint: Endpoint | None = None
    upstream_target: bytes = b""  # canonical path + admitted query
    forward: list[tuple[bytes, bytes]] = field(default_factory=list)  # allowlisted headers
    presented: list[tuple[bytes, bytes]] = field(default_factory=list)  # key headers sent
    real_key: str | None = None
    body: bytes = b""  # canonical body (shapes.admit), then with its bound written (bounds.py)
    doc: dict[str, Any] | None = None  # the checked document `body` serialises (read once)
    ask: Ask = field(default_factory=Ask)  # what admission reserved (budget.Ledger.admit)
    strip_usage: bool = False  # remove the usage chunk we asked for from the agent's stream

    @property
    def head(self) -> bool:
        return self.method == "HEAD"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """The request as it goes to the vendor: built only from what the checks admitted."""

    method: bytes
    target: bytes  # canonical path + admitted query
    headers: list[tuple[bytes, bytes]]
    body: bytes  # canonical JSON (shapes.admit)


def outgoing(
    flow: Flow, auth_header: str | None, bearer: bool, beta: bytes | None = None
) -> Outgoing:
    """Host, the allowlisted headers, our framing and the real key (never the agent's).

    `beta`: a subscription's anthropic-beta value, added when the agent's header lacks it (a
    401 for want of it would otherwise look like an expired token and cost a refresh)."""
    forward = flow.forward if beta is None else with_beta(flow.forward, beta)
    headers = [(b"host", flow.host.encode()), *forward]
    headers.append((b"content-length", b"%d" % len(flow.body)))
    headers.append((b"accept-encoding", b"identity"))  # so usage can be read from the body
    if flow.real_key is not None and auth_header is not None:
        value = f"Bearer {flow.real_key}" if bearer else flow.real_key
        headers.append((auth_header.encode(), value.encode()))
    return Outgoing(flow.request.method, flow.upstream_target, headers, flow.body)


def with_beta(headers: list[tuple[bytes, bytes]], beta: bytes) -> list[tuple[bytes, bytes]]:
    """`headers` with `beta` among the anthropic-beta values (added once, order kept)."""
    values = [v.strip() for n, v in headers if n == b"anthropic-beta" for v in v.split(b",")]
    if beta in values:
        return headers
    kept = [(n, v) for n, v in headers if n != b"anthropic-beta"]
    return [*kept, (b"anthropic-beta", b",".join([*(v for v in values if v), beta]))]
