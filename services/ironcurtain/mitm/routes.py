"""Which requests a package registry serves: a pure classification of method and path.

Reads only (GET/HEAD), no query string, plain segments; then per kind: a PyPI project page, an
npm packument (plain or scoped name), an apt index under `dists/` or a `.deb` under `pool/`.
Anything else is a file, served only if an index served in this session listed it (depot.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from .errors import Refusal
from .quarantine import FILES_PREFIX
from .registries import Kind, Registry

_SEGMENT = re.compile(r"^[A-Za-z0-9._~+%:@!$&'()*,=-]+$")
_PYPI_PROJECT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_NPM_PART = re.compile(r"^[a-z0-9~-][a-z0-9._~-]*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Route:
    action: str  # "index" (pypi/npm metadata) | "apt-index" | "file"
    name: str = ""  # package name for index routes and apt files
    version: str = ""


_READ = ("GET", "HEAD")


def _refuse(reason: str, rule: str = "registry") -> Refusal:
    return Refusal(403, rule, reason)


def route(registry: Registry, method: str, target: bytes) -> Route:
    """Classify one request to `registry`; raise Refusal (403/400) for anything not a read."""
    if method not in _READ:
        raise _refuse(
            f"{method} refused: registries are read-only through IronCurtain "
            "(publishing, login and other writes are not allowed)",
            "registry-write",
        )
    path, _, query = target.partition(b"?")
    if query:
        raise Refusal(400, "registry-path", "query strings are refused on registry requests")
    try:
        text = path.decode("ascii")
    except UnicodeDecodeError:
        raise Refusal(400, "registry-path", "request path is not ASCII") from None
    if not text.startswith(registry.base + "/"):
        raise _refuse(f"{text} is outside the registry {registry.agent_url}", "registry-path")
    rest = text[len(registry.base) :]
    segments = rest[1:].split("/")
    trailing = segments[-1] == ""
    if trailing:
        segments = segments[:-1]
    decoded = [unquote(s) for s in segments]
    scoped = registry.kind is Kind.NPM and len(segments) == 1 and segments[0].startswith("@")
    if (
        not segments
        or (trailing and registry.kind is not Kind.PYPI)
        or any(not s or not _SEGMENT.match(s) for s in segments)
        or any(d in (".", "..") or "\\" in d or ("/" in d and not scoped) for d in decoded)
    ):
        raise Refusal(400, "registry-path", f"path {text} is not a plain registry path")
    if rest.startswith(FILES_PREFIX + "/"):
        return Route("file")
    if registry.kind is Kind.PYPI:
        if len(segments) == 1 and _PYPI_PROJECT.match(segments[0]):
            return Route("index", segments[0])
        return Route("file")  # served only if an index served this session listed it
    if registry.kind is Kind.NPM:
        if segments[0] == "-":
            raise _refuse(
                f"npm's /-/ endpoints (login, search, audit, tokens) are refused: {text}",
                "registry-endpoint",
            )
        name = _npm_name(segments)
        if name is not None and not trailing:
            return Route("index", name)
        return Route("file")
    # apt: signed indexes under dists/, packages under pool/
    if segments[0] == "dists" and len(segments) >= 3:
        return Route("apt-index")
    if segments[0] == "pool" and len(segments) >= 2 and segments[-1].endswith(".deb"):
        parts = unquote(segments[-1])[:-4].split("_")
        if len(parts) == 3 and all(parts):
            return Route("file", parts[0], parts[1])
    raise _refuse(f"only dists/ indexes and pool/ .deb files are served: {text}", "registry-path")


def _npm_name(segments: list[str]) -> str | None:
    """`name`, `@scope%2fname` or `@scope/name` -> the package name, or None."""
    if len(segments) == 1:
        decoded = unquote(segments[0])
        if decoded.startswith("@") and decoded.count("/") == 1:
            scope, _, name = decoded[1:].partition("/")
            if _NPM_PART.match(scope) and _NPM_PART.match(name):
                return decoded
            return None
        return decoded if _NPM_PART.match(decoded) else None
    if len(segments) == 2 and segments[0].startswith("@"):
        scope, name = segments[0][1:], segments[1]
        if _NPM_PART.match(scope) and _NPM_PART.match(name):
            return f"@{scope}/{name}"
    return None
