"""Policy YAML -> frozen Policy. A malformed file is refused with its file, line and the fault.

The YAML is read with a loader that remembers each mapping's line, so every error can point
at the place a reviewer has to fix. `${name}` in strings is replaced from the variables the
caller passes (workspace, state_dir, ...); an unknown variable is an error, not an empty string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .domains import entry_problem
from .model import Argument, Condition, Effect, Policy, Role, Rule, Server, Tool
from .resources import PSEUDO_TOOLS


class PolicyError(ValueError):
    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.file = file
        self.line = line
        self.message = message


class _Map(dict):
    """A YAML mapping that knows its line and each key's line (1-based)."""

    line: int = 0
    key_lines: dict[str, int]

    def __init__(self) -> None:
        super().__init__()
        self.key_lines = {}  # an absent section (`_Map()`) has no lines either


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    result = _Map()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, (list, dict)):  # `[]: x` is YAML, but no key of ours
            raise PolicyError("", key_node.start_mark.line + 1, "a key must be a scalar")
        if key in result:
            raise PolicyError("", key_node.start_mark.line + 1, f"duplicate key {key!r}")
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


class _Seq(list):
    """A YAML sequence that knows each item's line (1-based)."""

    item_lines: list[int]


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> _Seq:
    result = _Seq(loader.construct_object(child, deep=True) for child in node.value)
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)

_VAR = re.compile(r"\$\{([a-z_]+)\}")
_RULE_KEYS = {"name", "effect", "reason", "server", "servers", "tools", "when"}
_WHEN_KEYS = {
    "roles",
    "paths_within",
    "paths_outside",
    "domains_in",
    "domains_not_in",
    "remotes_in",
}
_TOP_KEYS = {"version", "protected", "breaker", "lists", "servers", "rules"}


class _Reader:
    def __init__(self, file: str, variables: Mapping[str, str]) -> None:
        self.file = file
        self.variables = variables

    def fail(self, line: int, message: str) -> PolicyError:
        return PolicyError(self.file, line, message)

    def mapping(self, value: Any, line: int, what: str) -> _Map:
        if not isinstance(value, _Map):
            raise self.fail(line, f"{what} must be a mapping")
        return value

    def only(self, m: _Map, allowed: set[str], what: str) -> None:
        for key in m:
            if key not in allowed:
                raise self.fail(
                    m.key_lines[key],
                    f"{what}: unknown key {key!r} (expected one of {', '.join(sorted(allowed))})",
                )

    def text(self, value: Any, line: int, what: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(line, f"{what} must be a non-empty string")

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.variables:
                raise self.fail(line, f"{what}: unknown variable ${{{name}}}")
            return self.variables[name]

        return _VAR.sub(sub, value)

    def texts(self, value: Any, line: int, what: str) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise self.fail(line, f"{what} must be a list of strings")
        return tuple(self.text(v, line, what) for v in value)

    def line_of(self, m: _Map, key: str) -> int:
        return m.key_lines.get(key, m.line)


def load_policy(path: Path, variables: Mapping[str, str]) -> Policy:
    """Read and check one policy file. Raises PolicyError (file:line: what is wrong)."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(file, 0, f"cannot read the policy: {exc.strerror}") from None
    return parse_policy(text, file, variables)


def parse_policy(text: str, file: str, variables: Mapping[str, str]) -> Policy:
    reader = _Reader(file, variables)
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except PolicyError as exc:
        raise reader.fail(exc.line, exc.message) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise reader.fail(line, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    top = reader.mapping(doc, 1, "the policy")
    reader.only(top, _TOP_KEYS, "the policy")
    if top.get("version") != 1:
        raise reader.fail(reader.line_of(top, "version"), "version must be 1")

    protected = reader.mapping(
        top.get("protected", _Map()), reader.line_of(top, "protected"), "protected"
    )
    reader.only(protected, {"paths", "names"}, "protected")
    protected_paths = reader.texts(
        protected.get("paths", []), reader.line_of(protected, "paths"), "protected paths"
    )
    for p in protected_paths:
        if not p.startswith("/"):
            raise reader.fail(
                reader.line_of(protected, "paths"), f"protected path {p!r} is not absolute"
            )
    protected_names = reader.texts(
        protected.get("names", []), reader.line_of(protected, "names"), "protected names"
    )

    breaker = reader.mapping(top.get("breaker", _Map()), reader.line_of(top, "breaker"), "breaker")
    reader.only(breaker, {"limit", "window_s"}, "breaker")
    limit, window = breaker.get("limit", 20), breaker.get("window_s", 60)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise reader.fail(
            reader.line_of(breaker, "limit"), "breaker limit must be a positive integer"
        )
    if not isinstance(window, int | float) or isinstance(window, bool) or window <= 0:
        raise reader.fail(reader.line_of(breaker, "window_s"), "breaker window_s must be positive")

    lists_map = reader.mapping(top.get("lists", _Map()), reader.line_of(top, "lists"), "lists")
    lists = {
        str(name): reader.texts(entries, lists_map.key_lines[name], f"list {name!r}")
        for name, entries in lists_map.items()
    }

    servers = _servers(reader, top)
    rules = _rules(reader, top, servers, lists)
    _check_domain_lists(reader, lists_map, lists, rules)
    return Policy(
        servers=servers,
        protected=protected_paths,
        protected_names=protected_names,
        lists=lists,
        rules=rules,
        breaker_limit=limit,
        breaker_window_s=float(window),
    )


def _check_domain_lists(
    reader: _Reader, lists_map: _Map, lists: Mapping[str, tuple[str, ...]], rules: tuple[Rule, ...]
) -> None:
    """Every list a rule matches hosts against holds host names, and no shared-hosting suffix
    (an entry covers its sub-domains: see domains.py)."""
    used = {ref for r in rules for ref in (r.when.domains_in, r.when.domains_not_in) if ref}
    for name in sorted(used):
        raw = lists_map.get(name)
        lines = getattr(raw, "item_lines", [])
        for i, entry in enumerate(lists[name]):
            problem = entry_problem(entry)
            if problem is not None:
                line = lines[i] if i < len(lines) else lists_map.key_lines[name]
                raise reader.fail(line, f"list {name!r} (hosts for domain rules): {problem}")


def _servers(reader: _Reader, top: _Map) -> dict[str, Server]:
    servers_map = reader.mapping(top.get("servers"), reader.line_of(top, "servers"), "servers")
    servers = {}
    for name, body in servers_map.items():
        line = servers_map.key_lines[name]
        if not isinstance(name, str) or "__" in name or not name:
            raise reader.fail(line, f"server name {name!r} must be a string without '__'")
        body = reader.mapping(body, line, f"server {name!r}")
        reader.only(body, {"root", "tools"}, f"server {name!r}")
        root = reader.text(
            body.get("root", "/"), reader.line_of(body, "root"), f"server {name!r} root"
        )
        if not root.startswith("/"):
            raise reader.fail(
                reader.line_of(body, "root"), f"server {name!r}: root must be absolute"
            )
        tools_map = reader.mapping(
            body.get("tools"), reader.line_of(body, "tools"), f"server {name!r} tools"
        )
        tools = {}
        for tool_name, args in tools_map.items():
            tline = tools_map.key_lines[tool_name]
            if tool_name in PSEUDO_TOOLS:
                raise reader.fail(
                    tline,
                    f"server {name!r}: {tool_name!r} is not a tool to declare: every server "
                    "has it (resources and prompts, docs/policy.md); a rule names it",
                )
            args = _Map() if args is None else reader.mapping(args, tline, f"tool {tool_name!r}")
            arguments = {}
            for arg_name, role_text in args.items():
                aline = args.key_lines[arg_name]
                if not isinstance(role_text, str):
                    raise reader.fail(
                        aline, f"{name}.{tool_name}.{arg_name}: role must be a string"
                    )
                many = role_text.endswith("[]")
                try:
                    role = Role(role_text.removesuffix("[]"))
                except ValueError:
                    roles = ", ".join(r.value for r in Role)
                    raise reader.fail(
                        aline,
                        f"{name}.{tool_name}.{arg_name}: unknown role {role_text!r} ({roles})",
                    ) from None
                arguments[str(arg_name)] = Argument(str(arg_name), role, many)
            tools[str(tool_name)] = Tool(name, str(tool_name), arguments)
        servers[name] = Server(name, root, tools)
    return servers


def _rules(
    reader: _Reader, top: _Map, servers: Mapping[str, Server], lists: Mapping[str, tuple[str, ...]]
) -> tuple[Rule, ...]:
    raw_rules = top.get("rules")
    if not isinstance(raw_rules, list):
        raise reader.fail(reader.line_of(top, "rules"), "rules must be a list")
    rules: list[Rule] = []
    names: set[str] = set()
    for raw in raw_rules:
        body = reader.mapping(raw, reader.line_of(top, "rules"), "each rule")
        line = body.line
        reader.only(body, _RULE_KEYS, "rule")
        name = reader.text(body.get("name"), line, "rule name")
        if name in names:
            raise reader.fail(line, f"rule {name!r} is defined twice")
        names.add(name)
        try:
            effect = Effect(body.get("effect"))
        except ValueError:
            raise reader.fail(
                reader.line_of(body, "effect"),
                f"rule {name!r}: effect must be allow, deny or escalate, "
                f"not {body.get('effect')!r}",
            ) from None
        reason = reader.text(
            body.get("reason"), reader.line_of(body, "reason"), f"rule {name!r} reason"
        )
        rule_servers = None
        if "server" in body or "servers" in body:
            key = "server" if "server" in body else "servers"
            rule_servers = frozenset(
                reader.texts(body[key], reader.line_of(body, key), f"rule {name!r} {key}")
            )
            for s in rule_servers:
                if s not in servers:
                    raise reader.fail(
                        reader.line_of(body, key), f"rule {name!r}: unknown server {s!r}"
                    )
        rule_tools = None
        if "tools" in body:
            rule_tools = frozenset(
                reader.texts(body["tools"], reader.line_of(body, "tools"), f"rule {name!r} tools")
            )
            known = {t for s in (rule_servers or servers) for t in servers[s].tools} | PSEUDO_TOOLS
            for t in sorted(rule_tools - known):
                raise reader.fail(
                    reader.line_of(body, "tools"), f"rule {name!r}: unknown tool {t!r}"
                )
        when = _condition(reader, body, name, lists)
        rules.append(Rule(name, effect, reason, rule_servers, rule_tools, when))
    return tuple(rules)


def _condition(
    reader: _Reader, body: _Map, name: str, lists: Mapping[str, tuple[str, ...]]
) -> Condition:
    if "when" not in body:
        return Condition()
    when = reader.mapping(body["when"], reader.line_of(body, "when"), f"rule {name!r} when")
    reader.only(when, _WHEN_KEYS, f"rule {name!r} when")
    roles = set()
    for text in reader.texts(when.get("roles", []), reader.line_of(when, "roles"), "roles"):
        try:
            roles.add(Role(text))
        except ValueError:
            raise reader.fail(
                reader.line_of(when, "roles"), f"rule {name!r}: unknown role {text!r}"
            ) from None
    refs = {}
    for key in _WHEN_KEYS - {"roles"}:
        if key in when:
            ref = reader.text(when[key], reader.line_of(when, key), f"rule {name!r} {key}")
            if ref not in lists:
                raise reader.fail(
                    reader.line_of(when, key), f"rule {name!r}: {key} names unknown list {ref!r}"
                )
            refs[key] = ref
    return Condition(roles=frozenset(roles), **refs)
