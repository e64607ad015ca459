"""Checks on a proposed policy that no LLM answer can argue its way around (pure).

They run on the engine's own view of the policy (loaded by its loader, decided by its engine over
a lexical resolver), so they test what will be enforced, not what the YAML seems to say:
- no `allow` rule lets a tool's paths, URLs or remotes through unconstrained;
- every path argument of every tool stays denied on IronCurtain's protected paths and names,
  and outside the workspace;
- each named list holds only entries of the kind its rules use it for.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

from ..policy import Call, Effect, Engine, LexicalResolver, Policy, Role
from ..policy.model import Rule, Tool
from .entries import Kind, problems

# Fixed sample locations: the checks need concrete paths, the policy names them by variables.
SAMPLE = {
    "workspace": "/workspace",
    "policy_dir": "/etc/ironcurtain/policy",
    "audit_dir": "/audit",
    "state_dir": "/var/lib/ironcurtain",
    "ca_dir": "/ca",
    "secrets_dir": "/run/secrets",
}

_LIST_KIND = {
    "paths_within": Kind.PATHS,
    "paths_outside": Kind.PATHS,
    "domains_in": Kind.DOMAINS,
    "domains_not_in": Kind.DOMAINS,
    "remotes_in": Kind.REMOTES,
}


def _clock() -> float:
    return 0.0


def matches_tool(rule: Rule, tool: Tool) -> bool:
    roles = {a.role for a in tool.arguments.values()}
    return (
        (rule.servers is None or tool.server in rule.servers)
        and (rule.tools is None or tool.name in rule.tools)
        and (not rule.when.roles or bool(rule.when.roles & roles))
    )


def unconstrained_allows(policy: Policy) -> list[str]:
    found = []
    tools = [t for s in policy.servers.values() for t in s.tools.values()]
    for rule in policy.rules:
        if rule.effect is not Effect.ALLOW:
            continue
        for tool in tools:
            if not matches_tool(rule, tool):
                continue
            roles = {a.role for a in tool.arguments.values()}
            missing = []
            if any(r.is_path for r in roles) and rule.when.paths_within is None:
                missing.append("paths (paths_within)")
            if Role.URL in roles and rule.when.domains_in is None:
                missing.append("URLs (domains_in)")
            if Role.GIT_REMOTE in roles and rule.when.remotes_in is None:
                missing.append("remotes (remotes_in)")
            if missing:
                found.append(
                    f"rule {rule.name!r} allows {tool.qualified} without limiting its "
                    f"{' and '.join(missing)}"
                )
    return found


def list_kinds(policy: Policy) -> tuple[dict[str, Kind], list[str]]:
    kinds: dict[str, Kind] = {}
    found = []
    for rule in policy.rules:
        for key, kind in _LIST_KIND.items():
            name = getattr(rule.when, key)
            if name is None:
                continue
            if kinds.setdefault(name, kind) is not kind:
                found.append(f"list {name!r} is used as {kinds[name].value} and as {kind.value}")
    return kinds, found


def list_problems(policy: Policy, raw_lists: Mapping[str, object]) -> list[str]:
    """raw_lists: the lists as written (before ${...} is filled in)."""
    kinds, found = list_kinds(policy)
    for name, kind in kinds.items():
        found += [f"list {name!r}: {p}" for p in problems(kind, raw_lists.get(name))]
    return found


def probes(variables: Mapping[str, str] = SAMPLE) -> tuple[tuple[str, str], ...]:
    """(path, why) pairs that must be denied for every path argument of every tool."""
    ws = variables["workspace"]
    protected = [
        variables[k] for k in ("policy_dir", "audit_dir", "state_dir", "ca_dir", "secrets_dir")
    ]
    found = [(f"{p}/x", "protected path") for p in protected]
    found += [(p, "protected path") for p in protected]
    found += [(f"{ws}/.env", "protected name"), (f"{ws}/src/server.key", "protected name")]
    outside = ("/", "/etc/passwd", "/srv/x", "/root/.ssh/id_rsa", f"{ws}/../elsewhere")
    found += [(p, "outside the workspace") for p in outside]
    found.append((posixpath.dirname(ws.rstrip("/")) or "/", "outside the workspace"))
    return tuple(found)


def probe_failures(policy: Policy, variables: Mapping[str, str] = SAMPLE) -> list[str]:
    engine = Engine(policy, LexicalResolver(), _clock)
    found = []
    for server in policy.servers.values():
        for tool in server.tools.values():
            path_args = [a for a in tool.arguments.values() if a.role.is_path]
            for path, why in probes(variables):
                for arg in path_args:
                    args = {arg.name: [path] if arg.many else path}
                    decision = engine.decide(Call(server.name, tool.name, args))
                    if decision.effect is not Effect.DENY:
                        found.append(
                            f"{tool.qualified} {arg.name}={path} ({why}) must be denied, "
                            f"the rules say {decision.effect.value} (rule {decision.rule})"
                        )
    return found


def check(policy: Policy, raw_lists: Mapping[str, object]) -> list[str]:
    return unconstrained_allows(policy) + list_problems(policy, raw_lists) + probe_failures(policy)


_RANK = {Effect.DENY: 0, Effect.ESCALATE: 1, Effect.ALLOW: 2}


def sample_calls(policy: Policy) -> list[Call]:
    """A few calls per tool, inside and outside the workspace, trusted and unknown sites."""
    ws = SAMPLE["workspace"]
    calls = []
    for server in policy.servers.values():
        for tool in server.tools.values():
            for path in (f"{ws}/src/app.py", "/srv/elsewhere"):
                for url in ("https://docs.python.org/3/", "https://unknown.example.com/"):
                    args: dict[str, object] = {}
                    for arg in tool.arguments.values():
                        value = {Role.URL: url, Role.GIT_REMOTE: "origin", Role.BRANCH: "main"}.get(
                            arg.role, path if arg.role.is_path else None
                        )
                        if value is not None:
                            args[arg.name] = [value] if arg.many else value
                    calls.append(Call(server.name, tool.name, args))
    return list({repr(c): c for c in calls}.values())


def loosened(old: Policy, new: Policy) -> list[str]:
    """Sample calls the proposal decides more permissively than the current policy."""
    before = Engine(old, LexicalResolver(), _clock)
    after = Engine(new, LexicalResolver(), _clock)
    found = []
    for call in sample_calls(new):
        a, b = before.decide(call), after.decide(call)
        if _RANK[b.effect] > _RANK[a.effect]:
            found.append(
                f"{call.server}__{call.tool} {dict(call.arguments)}: "
                f"{a.effect.value} ({a.rule}) -> {b.effect.value} ({b.rule})"
            )
    return found
