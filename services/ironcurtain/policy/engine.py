"""The decision: phase 1 (invariants no rule can override), then phase 2 (first matching rule).

Pure apart from what is passed in: a Resolver (the only filesystem access) and a clock (for
the circuit breaker). Rules are compiled into a table per tool at construction, so a decision
looks up its tool's few rules instead of scanning the whole policy.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from . import gitargs, urls
from . import paths as pathcheck
from .breaker import Breaker
from .model import Call, Condition, Decision, Effect, Policy, Role, Rule, Tool
from .resolver import Resolver
from .resources import (
    ELICITATION,
    LOCATED_READ,
    PROMPT_GET,
    RESOURCE_READ,
    SAMPLING,
    UriRefused,
    pseudo_tools,
    read_arguments,
)

# Names of the phase-1 invariants, as they appear in decisions and the audit log.
UNKNOWN_TOOL = "unknown-tool"
BAD_ARGUMENTS = "bad-arguments"
PROTECTED_PATH = "protected-path"
CIRCUIT_BREAKER = "circuit-breaker"
NO_MATCH = "no-matching-rule"
# The values a list argument may carry: each path is resolved on the disk, and deciding runs on
# the proxy's event loop (200 000 paths took 8 s in the attacker review, every other call waiting).
MAX_LIST_VALUES = 1000


@dataclass(frozen=True, slots=True)
class _Domains:
    exact: frozenset[str]
    suffixes: tuple[str, ...]  # ".python.org" for an entry "python.org" or "*.python.org"

    def __contains__(self, host: str) -> bool:
        return host in self.exact or host.endswith(self.suffixes)


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: Rule
    roles: frozenset[Role]
    within: tuple[str, ...] | None
    outside: tuple[str, ...] | None
    domains_in: _Domains | None
    domains_not_in: _Domains | None
    remotes_in: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class _Entry:
    tool: Tool
    root: str
    rules: tuple[_Compiled, ...]


@dataclass(frozen=True, slots=True)
class _Facts:
    """What phase 1 learned about a call's arguments, for phase 2 to match on."""

    paths: tuple[tuple[Role, str], ...]
    hosts: tuple[str, ...]
    remotes: tuple[str, ...]
    present: frozenset[Role]
    # Each argument as decided on: paths resolved, URLs canonical, the rest as sent. The
    # circuit breaker counts calls by this, so `./x`, `x/` and `a/../x` are one call.
    decided: tuple[tuple[str, Any], ...]


class Refused(Exception):  # internal control flow: never leaves this module
    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


def _domains(entries: tuple[str, ...]) -> _Domains:
    exact, suffixes = set(), []
    for entry in entries:
        name = entry.lower().rstrip(".").removeprefix("*.")
        exact.add(name)
        suffixes.append("." + name)
    return _Domains(frozenset(exact), tuple(suffixes))


def _naming(name: str) -> Callable[[Rule], bool]:
    """A rule that names the pseudo-tool `name` and selects no role."""
    return lambda r: r.tools is not None and name in r.tools and not r.when.roles


class Engine:
    def __init__(self, policy: Policy, resolver: Resolver, clock: Callable[[], float]) -> None:
        self.policy = policy
        self._resolver = resolver
        self._clock = clock
        self._breaker = Breaker(policy.breaker_limit, policy.breaker_window_s)
        # Protected paths are compared in real, folded form (a protected dir behind a symlink
        # is still protected).
        real = {p for raw in policy.protected for p in (raw, resolver.resolve("/", raw))}
        self._protected = tuple(sorted(pathcheck.fold(p) for p in real))
        self._protection = pathcheck.Protection.compile(
            self._protected, tuple(pathcheck.fold(n) for n in policy.protected_names)
        )
        self._lists = {
            name: tuple(resolver.resolve("/", e) if e.startswith("/") else e for e in entries)
            for name, entries in policy.lists.items()
        }
        self._table = self._compile()

    # -- compile ---------------------------------------------------------------------------

    def _compile(self) -> dict[tuple[str, str], _Entry]:
        table = {}
        for server in self.policy.servers.values():
            root = self._resolver.resolve("/", server.root)
            for tool in server.tools.values():
                tool_roles = {a.role for a in tool.arguments.values()}
                rules = tuple(
                    self._compile_rule(rule)
                    for rule in self.policy.rules
                    if (rule.servers is None or server.name in rule.servers)
                    and (rule.tools is None or tool.name in rule.tools)
                    and (not rule.when.roles or rule.when.roles & tool_roles)
                )
                table[(server.name, tool.name)] = _Entry(tool, root, rules)
            # resources/read and prompts/get (resources.py). A read of a path or a URL is
            # decided by the rules that select its role (the workspace's read rule decides a
            # file: read), whether or not they name resources/read; a read of any other URI
            # and a prompt get only by a rule naming the pseudo-tool and selecting no role (a
            # server's sampling and elicitation requests likewise). A rule over all of a
            # server's tools reaches none of them.
            pseudo = pseudo_tools(server.name)
            for key, tool, applies in (
                (
                    RESOURCE_READ,
                    pseudo[RESOURCE_READ],
                    lambda r: r.tools is not None and RESOURCE_READ in r.tools and not r.when.roles,
                ),
                (
                    LOCATED_READ,
                    pseudo[RESOURCE_READ],
                    lambda r: (
                        (r.tools is None or RESOURCE_READ in r.tools)
                        and bool(r.when.roles & _LOCATED_ROLES)
                    ),
                ),
                *(
                    (name, pseudo[name], _naming(name))
                    for name in (PROMPT_GET, SAMPLING, ELICITATION)
                ),
            ):
                rules = tuple(
                    self._compile_rule(rule)
                    for rule in self.policy.rules
                    if (rule.servers is None or server.name in rule.servers) and applies(rule)
                )
                table[(server.name, key)] = _Entry(tool, root, rules)
        return table

    def _compile_rule(self, rule: Rule) -> _Compiled:
        when: Condition = rule.when

        def lst(name: str | None) -> tuple[str, ...] | None:
            return None if name is None else self._lists[name]

        return _Compiled(
            rule=rule,
            roles=when.roles,
            within=lst(when.paths_within),
            outside=lst(when.paths_outside),
            domains_in=None if when.domains_in is None else _domains(self._lists[when.domains_in]),
            domains_not_in=None
            if when.domains_not_in is None
            else _domains(self._lists[when.domains_not_in]),
            remotes_in=None if when.remotes_in is None else frozenset(self._lists[when.remotes_in]),
        )

    # -- decide ----------------------------------------------------------------------------

    def decide(self, call: Call) -> Decision:
        entry = self._table.get((call.server, call.tool))
        if entry is None:
            return Decision(
                Effect.DENY,
                UNKNOWN_TOOL,
                f"{call.server}__{call.tool} is not a tool the policy declares",
            )
        try:
            facts = self._facts(entry, call.arguments)
        except Refused as refused:
            return Decision(Effect.DENY, refused.rule, refused.reason)
        paths = tuple(p for _, p in facts.paths)
        if self._breaker.trip(_call_key(call, facts.decided), self._clock()):
            return Decision(
                Effect.DENY,
                CIRCUIT_BREAKER,
                f"the same call was made {self._breaker.limit} times within "
                f"{self._breaker.window_s:g} s; wait before repeating it",
                paths,
                facts.hosts,
            )
        for compiled in entry.rules:
            if _matches(compiled, facts):
                rule = compiled.rule
                return Decision(rule.effect, rule.name, rule.reason, paths, facts.hosts)
        return Decision(
            Effect.DENY,
            NO_MATCH,
            f"no rule allows {entry.tool.qualified} with these arguments (default deny)",
            paths,
            facts.hosts,
        )

    def decide_read(self, server: str, uri: object) -> Decision:
        """A `resources/read` of `uri` on `server` (resources.py says how a URI is read)."""
        try:
            arguments = read_arguments(uri)
        except UriRefused as exc:
            return Decision(Effect.DENY, BAD_ARGUMENTS, f"resource URI refused: {exc}")
        located = "path" in arguments or "url" in arguments
        return self.decide(Call(server, LOCATED_READ if located else RESOURCE_READ, arguments))

    def _facts(self, entry: _Entry, arguments: Mapping[str, Any]) -> _Facts:
        if not isinstance(arguments, Mapping):
            raise Refused(BAD_ARGUMENTS, "the arguments are not an object")
        declared = entry.tool.arguments
        found_paths: list[tuple[Role, str]] = []
        hosts: list[str] = []
        remotes: list[str] = []
        present: set[Role] = set()
        decided: list[tuple[str, Any]] = []
        for name, value in arguments.items():
            argument = declared.get(name)
            if argument is None:
                raise Refused(
                    BAD_ARGUMENTS, f"argument {name!r} is not declared for {entry.tool.qualified}"
                )
            if argument.role is Role.NONE or value is None:
                decided.append((name, value))
                continue
            values = _strings(name, value, argument.many)
            if values:
                present.add(argument.role)
            seen: list[str] = []
            for raw in values:
                if argument.role.is_path:
                    real = self._path(entry.root, name, raw)
                    found_paths.append((argument.role, real))
                    seen.append(real)
                elif argument.role in _GIT_PATHS:
                    repo = arguments.get("repo_path")
                    base = repo if isinstance(repo, str) and repo.startswith("/") else entry.root
                    found_paths += self._git_paths(argument.role, base, name, raw)
                    seen.append(raw)
                elif argument.role is Role.URL:
                    hosts.append(_host(name, raw))
                    seen.append(urls.canonical(raw))
                else:
                    if argument.role is Role.GIT_REMOTE:
                        remotes.append(raw)
                    seen.append(raw)
            decided.append((name, seen if argument.many else seen[0]))
        return _Facts(
            tuple(found_paths),
            tuple(hosts),
            tuple(remotes),
            frozenset(present),
            tuple(sorted(decided, key=lambda item: item[0])),
        )

    def _path(self, root: str, name: str, raw: str, *, identity: bool = True) -> str:
        problem = pathcheck.character_problem(raw)
        if problem is not None:
            raise Refused(BAD_ARGUMENTS, f"argument {name!r}: {problem}")
        real = self._resolver.resolve(root, raw)
        lexical = _lexical(root, raw)
        # Both the path as written and where it really leads must be clear of protection.
        for candidate in (lexical, real) if lexical != real else (real,):
            hit = self._protection.hit(pathcheck.fold(candidate))
            if hit is not None:
                raise Refused(
                    PROTECTED_PATH,
                    f"argument {name!r} reaches {candidate}, which is protected ({hit}); "
                    "no rule can allow it",
                )
        problem = self._resolver.identity_problem(real) if identity else None
        if problem is not None:
            raise Refused(PROTECTED_PATH, f"argument {name!r}: {problem}; no rule can allow it")
        return real

    def _git_paths(self, role: Role, base: str, name: str, raw: str) -> list[tuple[Role, str]]:
        """The paths a git argument can reach, each checked as a path argument is."""
        if role is Role.GIT_REVISION:
            try:
                texts = gitargs.revision_paths(raw)
            except gitargs.GitArgumentError as exc:
                raise Refused(BAD_ARGUMENTS, f"argument {name!r}: {exc}") from None
            return [(Role.READ_PATH, self._path(base, name, t)) for t in texts]
        problem = (
            gitargs.branch_problem(raw) if role is Role.BRANCH else gitargs.pathspec_problem(raw)
        )
        if problem is not None:
            raise Refused(BAD_ARGUMENTS, f"argument {name!r}: {problem}")
        if role is Role.BRANCH:
            # What checkout opens when no branch has the name (a ref name, not a file: its
            # look-alikes on disk are no concern).
            self._path(base, name, raw, identity=False)
            return []
        real = self._path(base, name, raw)
        under = self._resolver.names_under(real)
        if under is None:
            raise Refused(
                BAD_ARGUMENTS,
                f"argument {name!r}: {real} holds too many files to check; name the files",
            )
        for path in under:  # `git add .` must not stage a protected file
            hit = self._protection.hit(pathcheck.fold(path))
            if hit is not None:
                raise Refused(
                    PROTECTED_PATH,
                    f"argument {name!r} reaches {path}, which is protected ({hit}); "
                    "no rule can allow it",
                )
            # nor a protected file under another name (`ln .env src/notes.txt; git add src`);
            # git never stages its own folder, whose objects a local clone hard-links
            if "/.git/" in path + "/":
                continue
            problem = self._resolver.identity_problem(path)
            if problem is not None:
                raise Refused(PROTECTED_PATH, f"argument {name!r}: {problem}; no rule can allow it")
        return [(Role.WRITE_PATH, real)]

    def protected_in(self, workspace: str) -> tuple[str, ...]:
        """Protected paths inside a workspace: a session must refuse to start on one."""
        return pathcheck.protected_under(self._resolver.resolve("/", workspace), self._protected)


_GIT_PATHS = frozenset({Role.GIT_REVISION, Role.GIT_PATHSPEC, Role.BRANCH})
_LOCATED_ROLES = frozenset({Role.READ_PATH, Role.URL})


def _lexical(root: str, raw: str) -> str:
    joined = raw if raw.startswith("/") else posixpath.join(root, raw)
    return posixpath.normpath("/" + joined.lstrip("/"))


def _strings(name: str, value: Any, many: bool) -> tuple[str, ...]:
    if many:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise Refused(BAD_ARGUMENTS, f"argument {name!r} must be a list of strings")
        if len(value) > MAX_LIST_VALUES:
            raise Refused(
                BAD_ARGUMENTS,
                f"argument {name!r} holds {len(value)} values; at most {MAX_LIST_VALUES} per "
                "call (split it into several calls)",
            )
        return tuple(value)
    if not isinstance(value, str):
        raise Refused(BAD_ARGUMENTS, f"argument {name!r} must be a string")
    return (value,)


def _host(name: str, raw: str) -> str:
    try:
        parts = urlsplit(raw)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise Refused(BAD_ARGUMENTS, f"argument {name!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise Refused(BAD_ARGUMENTS, f"argument {name!r} must be an http(s) URL with a host")
    if not host.isascii() or any(ch in _URL_BAD for ch in raw):
        raise Refused(BAD_ARGUMENTS, f"argument {name!r}: host must be plain ASCII (use punycode)")
    return host.rstrip(".")


_URL_BAD = frozenset(chr(c) for c in range(0x21)) | {"\\", "\x7f"}


def _call_key(call: Call, decided: tuple[tuple[str, Any], ...]) -> str:
    """A digest: a call's arguments can be megabytes, and the breaker keeps 10,000 keys."""
    text = json.dumps(
        [call.server, call.tool, decided], sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _matches(compiled: _Compiled, facts: _Facts) -> bool:
    if compiled.roles and not (compiled.roles & facts.present):
        return False
    # Containment is over every path argument, whatever the selecting roles: a move out of
    # the workspace must not pass as a delete inside it.
    considered = [p for _, p in facts.paths]
    if compiled.within is not None and not (
        considered and all(_under_any(p, compiled.within) for p in considered)
    ):
        return False
    if compiled.outside is not None and not any(
        not _under_any(p, compiled.outside) for p in considered
    ):
        return False
    if compiled.domains_in is not None and not (
        facts.hosts and all(h in compiled.domains_in for h in facts.hosts)
    ):
        return False
    if compiled.domains_not_in is not None and not any(
        h not in compiled.domains_not_in for h in facts.hosts
    ):
        return False
    return compiled.remotes_in is None or bool(
        facts.remotes and all(r in compiled.remotes_in for r in facts.remotes)
    )


def _under_any(path: str, bases: tuple[str, ...]) -> bool:
    return any(pathcheck.within(path, base) for base in bases)
