"""Approve-and-remember scopes: a human's approval kept for similar calls in one session (pure).

A scope only ever turns a later `escalate` into `allow`: the escalator consults remembered scopes
before asking a human, and a `deny` never reaches the escalator. Every scope is tied to one
server and tool, and narrows further by a directory prefix, a domain, or exactly the arguments.
Anything unusual (relative or unnormalised paths, no paths at all) is not covered: fail closed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("prefix", "domain", "exact")
# The MCP proxy's view of the workspace: a scope there or above covers the whole workspace,
# which would turn a delete or move rule off for the session. Never offered.
WORKSPACE = "/workspace"


def arguments_digest(arguments: Mapping[str, Any], key: bytes = b"") -> str:
    """A digest of the raw arguments. With the proxy's key (random, in its memory only) nobody
    who reads Redis can test guesses of a short secret against it."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def _clean_path(path: str) -> str | None:
    if not path.startswith("/") or posixpath.normpath(path) != path or "\x00" in path:
        return None
    return path


def _clean_domain(domain: str) -> str | None:
    name = domain.strip().rstrip(".").lower()
    return name or None


@dataclass(frozen=True, slots=True)
class Scope:
    kind: str  # prefix | domain | exact
    value: str  # directory, domain, or the arguments' digest
    server: str
    tool: str
    label: str = ""  # what the human saw when choosing it

    @property
    def id(self) -> str:
        key = "\x1f".join((self.kind, self.value, self.server, self.tool))
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def describe(self) -> str:
        what = {"prefix": "paths under", "domain": "the domain", "exact": "exactly"}[self.kind]
        return f"{self.server}__{self.tool}: {what} {self.label or self.value}"

    def covers(
        self,
        server: str,
        tool: str,
        raw_digest: str,
        paths: Iterable[str],
        domains: Iterable[str],
    ) -> bool:
        """`raw_digest`: arguments_digest of the raw call (never of redacted or cut text)."""
        if (server, tool) != (self.server, self.tool):
            return False
        if self.kind == "exact":
            return bool(raw_digest) and hmac.compare_digest(raw_digest, self.value)
        if self.kind == "prefix":
            top = self.value.rstrip("/") or "/"
            if top == "/" or top == WORKSPACE or WORKSPACE.startswith(top + "/"):
                return False  # the workspace or above: never a scope (see narrowest_directory)
            cleaned = [_clean_path(p) for p in paths]
            if not cleaned or None in cleaned:
                return False
            base = self.value.rstrip("/") + "/"
            return all(p == self.value or p.startswith(base) for p in cleaned)  # type: ignore[union-attr]
        if self.kind == "domain":
            names = [_clean_domain(d) for d in domains]
            return bool(names) and all(name == self.value for name in names)
        return False

    def to_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "value": self.value,
            "server": self.server,
            "tool": self.tool,
            "label": self.label,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Any) -> Scope:
        if not isinstance(data, dict):
            raise ValueError("scope is not an object")
        fields = {k: data.get(k, "") for k in ("kind", "value", "server", "tool", "label")}
        if not all(isinstance(v, str) for v in fields.values()):
            raise ValueError("scope fields must be strings")
        if fields["kind"] not in KINDS or not fields["value"]:
            raise ValueError(f"unknown scope kind {fields['kind']!r}")
        return cls(**fields)

    @classmethod
    def from_json(cls, text: str | bytes) -> Scope:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ValueError(f"scope is not JSON: {exc}") from None


def narrowest_directory(paths: Iterable[str]) -> str | None:
    """The deepest directory holding every path, or None when that is the workspace itself,
    anything above it, or the paths are unusual (fail closed: no directory scope offered)."""
    found = [_clean_path(p) for p in paths]
    cleaned = [p for p in found if p is not None]
    if not cleaned or len(cleaned) < len(found):
        return None
    directory = posixpath.commonpath([posixpath.dirname(p) for p in cleaned])
    if directory == "/" or directory == WORKSPACE or WORKSPACE.startswith(directory + "/"):
        return None
    return directory


def choices(
    server: str,
    tool: str,
    arguments: Mapping[str, Any],
    paths: Iterable[str],
    domains: Iterable[str],
    raw_digest: str = "",
) -> list[Scope]:
    """The scopes a human may pick: the narrowest directory covering every path, the domains,
    exactly this call (bound to the raw arguments' digest: offered only when there is one)."""
    found: list[Scope] = []
    directory = narrowest_directory(paths)
    if directory is not None:
        found.append(Scope("prefix", directory, server, tool, directory + "/"))
    names = [_clean_domain(d) for d in domains]
    if names and None not in names:
        for name in dict.fromkeys(names):
            found.append(Scope("domain", name, server, tool, name))  # type: ignore[arg-type]
    if raw_digest:
        label = json.dumps(arguments, sort_keys=True, ensure_ascii=False)
        found.append(Scope("exact", raw_digest, server, tool, label[:200]))
    return found


def pick(options: list[Scope], scope_id: str) -> Scope:
    """The offered scope with this id; anything else is refused (form input is not trusted)."""
    for option in options:
        if option.id == scope_id:
            return option
    raise ValueError("that scope was not offered for this escalation")
