"""Typed Python stubs for the MCP tools, generated from the proxy's tool listing. Pure.

`filesystem__read_text_file` becomes `filesystem.read_text_file(*, path: str, ...) -> str`: the
part before the first `__` is a namespace (a class of static methods), the rest the function.
Names are made ASCII identifiers (odd characters become `_`, a leading digit gets `t_`, a leading
`__` gets `t` since a class would mangle it, reserved words and builtins get a trailing `_`), and
names that collide after that get `_2`, `_3`, ...

The generated source is executed in the code sandbox, so nothing a tool listing says is ever
written into it as code: only identifiers we made, and the real names as `repr()` literals. The
descriptions go into the system prompt, never into the source.
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SEPARATOR = "__"
TOP_LEVEL = "tools"  # the namespace of tools whose name has no SEPARATOR
DESCRIPTION_CHARS = 400  # per tool in the prompt: enough to use it, bounded against floods
_ODD = re.compile(r"[^A-Za-z0-9_]")
# Our own names in the program's namespace, and what every program expects to find there.
_TAKEN = frozenset(dir(builtins)) | {"Any", "call_tool", "ToolError", "PolicyDenied", "NotApproved"}


def identifier(name: str) -> str:
    """`name` as an ASCII Python identifier that is no keyword and shadows no builtin."""
    ident = _ODD.sub("_", name) or "tool"
    if ident[0].isdigit():
        ident = "t_" + ident
    if keyword.iskeyword(ident) or keyword.issoftkeyword(ident) or ident in _TAKEN:
        ident += "_"  # `_` (a soft keyword) becomes `__`: hence the next check comes after
    if ident.startswith("__"):  # in a class body `__x` is name-mangled, `__x__` is special
        ident = "t" + ident
    return ident


def _unique(ident: str, used: set[str]) -> str:
    if ident not in used:
        used.add(ident)
        return ident
    n = 2
    while f"{ident}_{n}" in used:
        n += 1
    used.add(f"{ident}_{n}")
    return f"{ident}_{n}"


@dataclass(frozen=True, slots=True)
class Param:
    name: str  # the argument's real name (the schema's property)
    ident: str  # its Python parameter name
    annotation: str
    required: bool


@dataclass(frozen=True, slots=True)
class Stub:
    tool: str  # the real MCP tool name
    namespace: str  # Python identifier of its namespace
    function: str  # Python identifier of the function
    params: tuple[Param, ...]
    description: str

    @property
    def qualified(self) -> str:
        return f"{self.namespace}.{self.function}"

    def signature(self) -> str:
        parts = [
            f"{p.ident}: {p.annotation}"
            if p.required
            else f"{p.ident}: {_optional(p.annotation)} = None"
            for p in self.params
        ]
        inner = ", ".join(["*", *parts]) if parts else ""
        return f"{self.qualified}({inner}) -> str"


def _optional(annotation: str) -> str:
    return (
        annotation
        if annotation in ("Any", "None") or "None" in annotation.split(" | ")
        else (f"{annotation} | None")
    )


_SIMPLE = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "None"}


def annotation(schema: object, depth: int = 0) -> str:
    """A Python type for a JSON schema; `Any` for whatever it cannot say simply."""
    if not isinstance(schema, Mapping) or depth > 3:
        return "Any"
    kind = schema.get("type")
    if isinstance(kind, list):
        names = [annotation({**schema, "type": k}, depth + 1) for k in kind if isinstance(k, str)]
        return " | ".join(dict.fromkeys(names)) if names else "Any"
    if isinstance(kind, str) and kind in _SIMPLE:
        return _SIMPLE[kind]
    if kind == "array":
        return f"list[{annotation(schema.get('items'), depth + 1)}]"
    if kind == "object":
        return "dict[str, Any]"
    for union in ("anyOf", "oneOf"):
        options = schema.get(union)
        if isinstance(options, list) and options:
            names = [annotation(o, depth + 1) for o in options]
            return " | ".join(dict.fromkeys(names))
    return "Any"


def _params(schema: object) -> tuple[Param, ...]:
    if not isinstance(schema, Mapping):
        return ()
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return ()
    required = schema.get("required")
    needed = {r for r in required if isinstance(r, str)} if isinstance(required, list) else set()
    used: set[str] = set()
    params = []
    # Required first: a keyword-only signature allows any order, but it reads better.
    for name in sorted(properties, key=lambda n: (n not in needed, list(properties).index(n))):
        if not isinstance(name, str):
            continue
        ident = _unique(identifier(name), used)
        params.append(Param(name, ident, annotation(properties[name]), name in needed))
    return tuple(params)


def stubs(tools: Iterable[Mapping[str, Any]]) -> list[Stub]:
    """One stub per listed tool (entries without a string name are skipped)."""
    namespaces: dict[str, str] = {}  # real server part -> identifier
    used_namespaces: set[str] = set()
    functions: dict[str, set[str]] = {}  # namespace identifier -> function identifiers
    result = []
    for tool in tools:
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            continue
        server, sep, rest = name.partition(SEPARATOR)
        if not sep or not server or not rest:
            server, rest = TOP_LEVEL, name
        if server not in namespaces:
            namespaces[server] = _unique(identifier(server), used_namespaces)
        namespace = namespaces[server]
        function = _unique(identifier(rest), functions.setdefault(namespace, set()))
        description = str(tool.get("description") or "").strip()
        result.append(
            Stub(name, namespace, function, _params(tool.get("inputSchema")), description)
        )
    return result


def source(all_stubs: Iterable[Stub]) -> str:
    """The module the sandbox runs before the program: one class per namespace.

    `call_tool(name, arguments)` is provided by the sandbox (builtin_child); an argument left at
    None is not sent, so the tool's own default applies.
    """
    lines = ["from typing import Any", ""]
    by_namespace: dict[str, list[Stub]] = {}
    for stub in all_stubs:
        by_namespace.setdefault(stub.namespace, []).append(stub)
    for namespace, members in by_namespace.items():
        lines.append(f"class {namespace}:")
        for stub in members:
            params = ", ".join(
                f"{p.ident}: Any" if p.required else f"{p.ident}: Any = None" for p in stub.params
            )
            args = "{" + ", ".join(f"{p.name!r}: {p.ident}" for p in stub.params) + "}"
            lines += [
                "    @staticmethod",
                f"    def {stub.function}({'*, ' + params if params else ''}) -> Any:",
                f"        return call_tool({stub.tool!r}, {args})",
            ]
        lines.append("")
    return "\n".join(lines) + "\n"


def listing(all_stubs: Iterable[Stub]) -> str:
    """The stubs as the system prompt shows them: signature, then the tool's description."""
    blocks = []
    for stub in all_stubs:
        text = " ".join(stub.description.split())
        if len(text) > DESCRIPTION_CHARS:
            text = text[: DESCRIPTION_CHARS - 3] + "..."
        blocks.append(f"- {stub.signature()}\n    {text}" if text else f"- {stub.signature()}")
    return "\n".join(blocks)
