"""The policy as frozen, typed data: what the loader builds and the engine reads.

Nothing here does I/O. A `Policy` is built once at start-up and never changes; the engine's only
mutable state is the circuit breaker, which lives in its own module.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Effect(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    ESCALATE = "escalate"


class Role(enum.Enum):
    """What an argument means to the outside world; rules speak about roles, not names."""

    READ_PATH = "read-path"
    WRITE_PATH = "write-path"
    DELETE_PATH = "delete-path"
    URL = "url"
    GIT_REMOTE = "git-remote"
    BRANCH = "branch"  # also a path: checkout takes a name that is no branch as a pathspec
    GIT_REVISION = "git-revision"  # `rev:path`, `:path`, ranges: the paths are read paths
    GIT_PATHSPEC = "git-pathspec"  # a write path with no magic or wildcard; a folder's
    # contents are each checked
    NONE = "none"  # content, messages, numbers: no effect on where the call reaches

    @property
    def is_path(self) -> bool:
        return self in (Role.READ_PATH, Role.WRITE_PATH, Role.DELETE_PATH)


@dataclass(frozen=True, slots=True)
class Argument:
    name: str
    role: Role
    many: bool = False  # a list of values of this role (read_multiple_files' `paths`)


@dataclass(frozen=True, slots=True)
class Tool:
    server: str
    name: str
    arguments: Mapping[str, Argument]

    @property
    def qualified(self) -> str:
        return f"{self.server}__{self.name}"


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    root: str  # relative path arguments are resolved against this directory
    tools: Mapping[str, Tool]


@dataclass(frozen=True, slots=True)
class Condition:
    """All parts that are set must hold for a rule to match (an empty condition always holds)."""

    roles: frozenset[Role] = frozenset()  # the call has an argument of one of these roles
    paths_within: str | None = None  # every path argument (any role) lies under this list
    paths_outside: str | None = None  # some path argument lies outside every path of this list
    domains_in: str | None = None  # every url argument's host is in this domain list
    domains_not_in: str | None = None  # some url argument's host is not in this domain list
    remotes_in: str | None = None  # every git-remote argument is in this list


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    effect: Effect
    reason: str
    servers: frozenset[str] | None  # None: any server
    tools: frozenset[str] | None  # None: any tool of those servers
    when: Condition = field(default_factory=Condition)


@dataclass(frozen=True, slots=True)
class Policy:
    servers: Mapping[str, Server]
    protected: tuple[str, ...]  # absolute paths: nothing at or under them is reachable
    protected_names: tuple[str, ...]  # file-name globs protected anywhere (".env", ".env.*")
    lists: Mapping[str, tuple[str, ...]]  # named lists of paths, domains or remotes
    rules: tuple[Rule, ...]
    breaker_limit: int = 20
    breaker_window_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Call:
    server: str
    tool: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Decision:
    effect: Effect
    rule: str  # the rule (or phase-1 invariant) that decided
    reason: str  # in words a human, and the agent, can act on
    paths: tuple[str, ...] = ()  # resolved path arguments
    domains: tuple[str, ...] = ()  # host names of url arguments

    @property
    def allowed(self) -> bool:
        return self.effect is Effect.ALLOW
