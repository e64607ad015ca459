"""Request-target normalisation and endpoint globs: pure functions, no I/O.

A path is matched after percent-decoding, and anything whose meaning could differ between us and
the upstream (dot segments, empty segments, encoded separators `/ \\ ; ? # %`, NULs, control
bytes, invalid or overlong UTF-8) is refused rather than "cleaned". What is forwarded is the
canonical form of the path that matched (`Target.canonical`), never the agent's raw bytes, so
what we matched is what the vendor sees. The query string plays no part in matching; each
endpoint admits only the parameters and values it lists (`admit_query`), re-serialised.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

_HEX = frozenset(b"0123456789abcdefABCDEF")
# Raw bytes allowed in a path (RFC 3986 pchar plus "/"), minus ";" whose meaning differs by server.
_PATH_BYTES = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,=:@/%"
)
# Decoded, these would be separators (or a second decoding) to someone: never inside a segment.
_FORBIDDEN_DECODED = frozenset(b"/\\;?#%")
# What a canonical segment keeps unencoded (RFC 3986 pchar minus ";"); the rest is %XX.
_CANONICAL_SAFE = "-._~!$&'()*+,=:@"
# Query names and values admitted as they are: unreserved characters only, no encoding.
_QUERY_TOKEN = re.compile(rb"[A-Za-z0-9._~-]{1,64}")


class PathError(ValueError):
    """The request target is ambiguous or malformed; the message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    path: str  # decoded, validated, e.g. "/v1/messages"
    segments: tuple[str, ...]
    raw: bytes  # the agent's target as sent (never forwarded)
    query: bytes = b""  # the raw query (after "?"), checked against the endpoint's allowlist

    @property
    def canonical(self) -> bytes:
        """The path as forwarded: each decoded segment re-encoded one way only."""
        return ("/" + "/".join(quote(s, safe=_CANONICAL_SAFE) for s in self.segments)).encode()


def _decode_segment(raw: bytes) -> str:
    out = bytearray()
    i = 0
    while i < len(raw):
        byte = raw[i]
        if byte == 0x25:  # "%"
            pair = raw[i + 1 : i + 3]
            if len(pair) != 2 or not all(c in _HEX for c in pair):
                raise PathError("malformed percent-encoding")
            decoded = int(pair, 16)
            if decoded in _FORBIDDEN_DECODED:
                shown = chr(decoded)
                raise PathError(f"percent-encoded {shown!r} in path (a separator once decoded)")
            out.append(decoded)
            i += 3
        else:
            out.append(byte)
            i += 1
    if any(c < 0x20 or c == 0x7F for c in out):
        raise PathError("control character or NUL in path")
    try:
        text = out.decode("utf-8", errors="strict")  # strict also refuses overlong forms
    except UnicodeDecodeError:
        raise PathError("path is not valid UTF-8") from None
    if text in (".", ".."):
        raise PathError("dot segment in path")
    return text


def normalise(target: bytes, max_length: int = 2048) -> Target:
    """Parse an origin-form request target; raise PathError for anything ambiguous."""
    if len(target) > max_length:
        raise PathError("request target too long")
    path, _, query = target.partition(b"?")
    if not path.startswith(b"/"):
        raise PathError("request target is not an absolute path")
    bad = set(path) - _PATH_BYTES
    if bad:
        shown = "\\" if 0x5C in bad else repr(bytes(sorted(bad))[:1])[2:-1]
        raise PathError(f"forbidden character {shown!r} in path")
    if path == b"/":
        return Target("/", (), target, query)
    raw_segments = path[1:].split(b"/")
    if any(not s for s in raw_segments):
        raise PathError("empty path segment ('//' or trailing '/')")
    segments = tuple(_decode_segment(s) for s in raw_segments)
    return Target("/" + "/".join(segments), segments, target, query)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """`METHOD /path/with/*/globs`: `*` matches one or more characters inside one segment.

    `query`: the parameters the endpoint admits, each with its allowed values (all else is
    refused); `body`: the shape its request body must have (`shapes.py`), "none" = empty.
    """

    method: str
    pattern: str
    _segments: tuple[re.Pattern[str], ...]
    query: tuple[tuple[str, tuple[str, ...]], ...] = ()
    body: str = "none"

    @classmethod
    def parse(
        cls, spec: str, query: Mapping[str, object] | None = None, body: str | None = None
    ) -> Endpoint:
        parts = spec.split()
        if len(parts) != 2:
            raise ValueError(f"endpoint {spec!r}: expected 'METHOD /path'")
        method, pattern = parts
        if not method.isalpha() or not method.isupper():
            raise ValueError(f"endpoint {spec!r}: method must be upper-case letters")
        if (
            not pattern.startswith("/")
            or "//" in pattern
            or (pattern.endswith("/") and pattern != "/")
        ):
            raise ValueError(f"endpoint {spec!r}: path must be '/' followed by segments")
        segments = () if pattern == "/" else tuple(pattern[1:].split("/"))
        if any(s in (".", "..") for s in segments):
            raise ValueError(f"endpoint {spec!r}: dot segments are not allowed")
        compiled = tuple(
            re.compile("".join("[^/]+" if p == "*" else re.escape(p) for p in re.split(r"(\*)", s)))
            for s in segments
        )
        allowed = []
        for name, values in (query or {}).items():
            options = values if isinstance(values, list | tuple) else [values]
            texts = (str(name), *(_text(v) for v in options))
            if not options or not all(_QUERY_TOKEN.fullmatch(t.encode()) for t in texts):
                raise ValueError(
                    f"endpoint {spec!r}: query {name!r} needs plain values ([A-Za-z0-9._~-])"
                )
            allowed.append((texts[0], texts[1:]))
        if body is None:  # providers.py requires a shape for every endpoint that takes a body
            body = "none" if method in ("GET", "HEAD") else ""
        return cls(method, pattern, compiled, tuple(allowed), body)

    def matches(self, method: str, target: Target) -> bool:
        if method != self.method or len(target.segments) != len(self._segments):
            return False
        return all(rx.fullmatch(s) for rx, s in zip(self._segments, target.segments, strict=True))

    def __str__(self) -> str:
        return f"{self.method} {self.pattern}"


def _text(value: object) -> str:
    # YAML reads `true` as a boolean; a query value is the text the client sends.
    return str(value).lower() if isinstance(value, bool) else str(value)


@functools.lru_cache(maxsize=512)
def admit_query(endpoint: Endpoint, query: bytes) -> bytes:
    """The query to forward, or PathError: only listed names with listed values, each once.

    A query that passes is plain unreserved characters, so it is already in canonical form.

    Nothing of the query is echoed in the error: a refused query may carry a credential.
    """
    if not query:
        return b""
    allowed = dict(endpoint.query)
    seen: list[bytes] = []
    for pair in query.split(b"&"):
        name, sep, value = pair.partition(b"=")
        if not (
            sep
            and _QUERY_TOKEN.fullmatch(name)
            and _QUERY_TOKEN.fullmatch(value)
            and value.decode() in allowed.get(name.decode(), ())
            and name not in seen
        ):
            listed = ", ".join(f"{n}={'|'.join(v)}" for n, v in endpoint.query) or "none"
            raise PathError(f"query refused on {endpoint} (parameters admitted: {listed})")
        seen.append(name)
    return query


def first_match(endpoints: tuple[Endpoint, ...], method: str, target: Target) -> Endpoint | None:
    for endpoint in endpoints:
        if endpoint.matches(method, target):
            return endpoint
    return None
