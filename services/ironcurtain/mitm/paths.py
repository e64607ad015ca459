"""Request-target normalisation and endpoint globs: pure functions, no I/O.

A path is matched after percent-decoding, and anything whose meaning could differ between us and
the upstream (dot segments, empty segments, encoded slashes, backslashes, NULs, control bytes,
invalid or overlong UTF-8) is refused rather than "cleaned", so what we matched is what the
vendor sees. The query string is ignored for matching and forwarded unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEX = frozenset(b"0123456789abcdefABCDEF")
# Raw bytes allowed in a path (RFC 3986 pchar plus "/"), minus ";" whose meaning differs by server.
_PATH_BYTES = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,=:@/%"
)
_FORBIDDEN_DECODED = frozenset(b"/\\")


class PathError(ValueError):
    """The request target is ambiguous or malformed; the message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    path: str  # decoded, validated, e.g. "/v1/messages"
    segments: tuple[str, ...]
    raw: bytes  # what is forwarded upstream: the original target, unchanged


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
                raise PathError("percent-encoded '/' or '\\' in path")
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
    path, _, _query = target.partition(b"?")
    if not path.startswith(b"/"):
        raise PathError("request target is not an absolute path")
    bad = set(path) - _PATH_BYTES
    if bad:
        shown = "\\" if 0x5C in bad else repr(bytes(sorted(bad))[:1])[2:-1]
        raise PathError(f"forbidden character {shown!r} in path")
    if path == b"/":
        return Target("/", (), target)
    raw_segments = path[1:].split(b"/")
    if any(not s for s in raw_segments):
        raise PathError("empty path segment ('//' or trailing '/')")
    segments = tuple(_decode_segment(s) for s in raw_segments)
    return Target("/" + "/".join(segments), segments, target)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """`METHOD /path/with/*/globs`: `*` matches one or more characters inside one segment."""

    method: str
    pattern: str
    _segments: tuple[re.Pattern[str], ...]

    @classmethod
    def parse(cls, spec: str) -> Endpoint:
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
        return cls(method, pattern, compiled)

    def matches(self, method: str, target: Target) -> bool:
        if method != self.method or len(target.segments) != len(self._segments):
            return False
        return all(rx.fullmatch(s) for rx, s in zip(self._segments, target.segments, strict=True))

    def __str__(self) -> str:
        return f"{self.method} {self.pattern}"


def first_match(endpoints: tuple[Endpoint, ...], method: str, target: Target) -> Endpoint | None:
    for endpoint in endpoints:
        if endpoint.matches(method, target):
            return endpoint
    return None
