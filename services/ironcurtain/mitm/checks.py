"""The checks of the request path: pure functions over a Flow, each a refusal or nothing.

In order (server.py runs them, and stops at the first refusal): `head` (framing, Host,
upgrades, encoding, path, declared size), then, if no local answer applies, `endpoint`
(METHOD + path glob, the endpoint's query allowlist), `headers` (the provider's header
allowlist; credential-like names refused), `key` (the session's fake key), the budget (in
server.py: it reads the session's totals), `body` (the endpoint's body shape). Each fills in
the Flow what the next one, or the forwarding, needs. No I/O anywhere.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from . import headers, shapes
from .errors import Refusal, bounded
from .fake_keys import check as check_fake_key
from .fake_keys import presented_key
from .flow import Flow
from .paths import PathError, Target, admit_query, first_match, normalise
from .providers import RESERVED_HEADERS, Auth, Provider

_RESERVED = frozenset(n.encode() for n in RESERVED_HEADERS)


@dataclass(frozen=True, slots=True)
class Admission:
    """What a provider admits, precomputed once: its header allowlist, key headers, tools."""

    allowed: headers.Allowlist
    key_headers: frozenset[bytes]
    tools: shapes.Tools

    @classmethod
    def of(cls, provider: Provider) -> Admission:
        return cls(
            headers.Allowlist(provider.headers),
            frozenset(h.encode() for h in provider.key_headers),
            shapes.Tools(provider.client_tool_types, provider.strip_server_tools),
        )


@functools.lru_cache(maxsize=512)
def _parse_target(raw: bytes) -> Target:
    """Pure, so cached: an agent sends the same few targets again and again. A PathError is
    raised again each time (lru_cache keeps only results)."""
    return normalise(raw)


def head(flow: Flow, max_body_bytes: int) -> Refusal | None:
    """Framing, Host, upgrades, encoding, the path, the declared size; sets target and path."""
    # Iterating h11's Headers costs Python calls per item: listed once, kept for the allowlist.
    items = flow.items = list(flow.request.headers)
    names = [name for name, _ in items]
    if b"transfer-encoding" in names and b"content-length" in names:
        return Refusal(400, "smuggling", "both Transfer-Encoding and Content-Length are set")
    host = flow.host.encode()
    hosts = [value for name, value in items if name == b"host"]
    if len(hosts) != 1 or hosts[0].lower() not in (host, host + b":443"):
        return Refusal(
            403, "host-header", f"the Host header must be {flow.host} (the tunnel's host)"
        )
    upgrade = headers.upgrade_refused(names)
    if upgrade is not None:
        return upgrade
    encodings = [v.strip().lower() for n, v in items if n == b"content-encoding"]
    if any(e not in (b"", b"identity") for e in encodings):
        return Refusal(
            415, "encoding", "compressed request bodies are refused (they cannot be checked)"
        )
    try:
        flow.target = _parse_target(flow.request.target)
    except PathError as exc:
        return Refusal(400, "path", f"request path refused: {exc}")
    flow.path = flow.target.path
    for name, value in items:
        if name == b"content-length" and int(value) > max_body_bytes:
            return Refusal(413, "size", f"request body over {max_body_bytes} bytes")
    return None


def local(flow: Flow) -> bytes | None:
    """The answer of a local endpoint (never forwarded), or None."""
    assert flow.target is not None  # head() passed
    return next((b for e, b in flow.provider.local if e.matches(flow.method, flow.target)), None)


def endpoint(flow: Flow) -> Refusal | None:
    """METHOD + path must be an endpoint; its query only what the endpoint lists."""
    assert flow.target is not None  # head() passed
    found = first_match(flow.provider.endpoints, flow.method, flow.target)
    if found is None:
        return Refusal(
            403,
            "endpoint",
            f"{bounded(flow.method, 16)} {bounded(flow.path, 120)} is not an allowed endpoint "
            f"for {flow.provider.name}",
        )
    try:
        query = admit_query(found, flow.target.query)
    except PathError as exc:
        return Refusal(403, "query", str(exc))
    flow.endpoint = found
    canonical = flow.target.canonical
    flow.upstream_target = canonical + b"?" + query if query else canonical
    return None


def header_allowlist(flow: Flow, admission: Admission) -> Refusal | None:
    """The headers to forward (the allowlist) and the key headers presented."""
    try:
        flow.forward, flow.presented = headers.admit(
            flow.items or list(flow.request.headers),
            admission.key_headers,
            admission.allowed,
            _RESERVED,
        )
    except Refusal as refusal:
        return refusal
    return None


def key(
    flow: Flow,
    fake_keys: Mapping[str, str],
    real_keys: Mapping[str, str],
    oauth: bool = False,
) -> Refusal | None:
    """Every key header presented must carry this provider's fake key; one is required.

    `oauth`: a subscription session, whose fake token travels only as "Authorization: Bearer"
    (as Claude Code sends it); the real token is set later (it is asked of the host)."""
    provider = flow.provider
    present = flow.presented
    if provider.auth is Auth.NONE:
        if present:
            return Refusal(403, "key", f"{provider.name} takes no credentials; refused")
        return None
    if oauth and any(name != b"authorization" for name, _ in present):
        return Refusal(
            401, "key", "a subscription session's token goes in 'Authorization: Bearer' only"
        )
    if oauth and not present:
        present = [(b"authorization", b"")]
    if not present:
        present = [(provider.key_headers[0].encode(), b"")]
    for name, value in present:
        presented = presented_key(name.decode(), value.decode("latin-1"))
        verdict = check_fake_key(presented, provider.name, fake_keys)
        if not verdict.ok:
            flag = "foreign_fake_key" if verdict.foreign else None
            return Refusal(verdict.status, "key", verdict.reason, flag)
    flow.real_key = None if oauth else real_keys[provider.name]
    return None


def body(flow: Flow, raw: bytes, admission: Admission) -> Refusal | None:
    """The body in the endpoint's shape, re-serialised (shapes.py)."""
    assert flow.endpoint is not None  # endpoint() passed
    try:
        flow.body, flow.doc = shapes.admit_parsed(flow.endpoint.body, raw, admission.tools)
    except Refusal as refusal:
        return refusal
    return None
