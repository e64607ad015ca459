"""A URL in one canonical spelling, for what counts as "the same call" (the circuit breaker).

Pure. RFC 3986 section 6 normalisation: scheme and host in lower case, no trailing dot on the
host, the scheme's default port dropped, percent-escapes in upper case and unreserved ones
decoded, dot segments removed; and, since over-counting is the safe side for a breaker,
repeated and trailing slashes collapsed and the fragment (never sent) dropped. The URL has been
checked already (`engine._host`): http(s), a plain-ASCII host.
"""

from __future__ import annotations

import re
import string
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_SLASHES = re.compile(r"/{2,}")


def _unescape_unreserved(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return _ESCAPE.sub(one, text)


def _without_dots(path: str) -> str:
    """RFC 3986 5.2.4 on an absolute path, as segments."""
    out: list[str] = []
    segments = path.split("/")[1:]
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        elif segment == ".":
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)


def canonical(raw: str) -> str:
    """`raw` (an http(s) URL with a host) in its canonical spelling."""
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    if parts.username is not None or parts.password is not None:
        userinfo = parts.username or ""
        if parts.password is not None:
            userinfo += ":" + parts.password
        netloc = f"{userinfo}@{netloc}"
    path = _without_dots(_SLASHES.sub("/", "/" + _unescape_unreserved(parts.path)))
    path = path.rstrip("/") or "/"
    query = _unescape_unreserved(parts.query)
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")
