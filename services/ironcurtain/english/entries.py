"""What may stand in a named list: host names, git remotes, workspace paths (pure checks).

Whatever proposes a list (an LLM, an MCP call) is untrusted; each entry is checked for its kind
and refused with the reason. Host names only: no IP literals, no wildcard that matches everything,
no bare top-level domain (`com` would match every .com site). Paths stay inside the workspace.
"""

from __future__ import annotations

import enum
import ipaddress
import posixpath
import re

from ..policy.domains import entry_problem

# fullmatch everywhere: `$` would let a trailing newline through.
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_REMOTE = re.compile(r"(?:https://|ssh://|git@)[A-Za-z0-9._@:/~-]+|[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_ENTRIES = 500
WORKSPACE = "${workspace}"


class Kind(enum.Enum):
    DOMAINS = "domains"
    REMOTES = "remotes"
    PATHS = "paths"


def domain_problem(entry: str) -> str | None:
    name = entry.removeprefix("*.")
    if "*" in name:
        return f"{entry!r}: a wildcard may only lead ('*.example.com'); this one matches too much"
    if name != name.lower() or name.endswith("."):
        return f"{entry!r}: write host names in lower case, without a trailing dot"
    if len(name) > 253 or not name:
        return f"{entry!r} is not a host name"
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        return f"{entry!r} is an IP address; lists hold host names only"
    labels = name.split(".")
    if len(labels) < 2:
        return f"{entry!r} would match every host under a top-level domain"
    if not all(_LABEL.fullmatch(label) for label in labels):
        return f"{entry!r} is not a host name (letters, digits, '-' and '.' only)"
    if labels[-1].isdigit():
        return f"{entry!r} looks like an address, not a host name"
    return entry_problem(entry)  # what the policy loader refuses: shared-hosting suffixes


def remote_problem(entry: str) -> str | None:
    if not _REMOTE.fullmatch(entry) or "*" in entry or ".." in entry:
        return f"{entry!r} is not a git remote (a name, or an https://, ssh:// or git@ URL)"
    return None


def path_problem(entry: str) -> str | None:
    if entry == WORKSPACE:
        return None
    rest = entry.removeprefix(WORKSPACE + "/")
    if rest == entry:
        return f"{entry!r} is outside the workspace; path lists may only name {WORKSPACE}/..."
    if not rest or posixpath.normpath(rest) != rest.rstrip("/") or rest.startswith(".."):
        return f"{entry!r}: no '..', '.' or empty parts in a workspace path"
    if any(ord(c) < 32 for c in rest) or "$" in rest:
        return f"{entry!r}: control characters and variables are not allowed here"
    return None


_CHECKS = {Kind.DOMAINS: domain_problem, Kind.REMOTES: remote_problem, Kind.PATHS: path_problem}


def problems(kind: Kind, entries: object) -> list[str]:
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        return ["a list must be a list of strings"]
    if len(entries) > MAX_ENTRIES:
        return [f"{len(entries)} entries; at most {MAX_ENTRIES}"]
    found = [p for e in entries if (p := _CHECKS[kind](e)) is not None]
    if len(set(entries)) != len(entries):
        found.append("an entry is listed twice")
    return found
