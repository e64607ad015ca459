"""The stub generator: tool names as Python identifiers, schemas as types, and a generated module
that passes each tool's real name and arguments whatever the listing says."""

from __future__ import annotations

import ast
import keyword
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.agents import builtin_stubs as stubs


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("read_text_file", "read_text_file"),
        ("read-text.file", "read_text_file"),
        ("class", "class_"),  # a keyword
        ("match", "match_"),  # a soft keyword
        ("print", "print_"),  # a builtin the program needs
        ("call_tool", "call_tool_"),  # ours
        ("PolicyDenied", "PolicyDenied_"),
        ("3d", "t_3d"),
        ("", "tool"),
        ("naïve", "na_ve"),  # ASCII only
        ("a b\nc", "a_b_c"),
        ("__init__", "t__init__"),  # no dunder, no class-private (mangled) name
        ("__x", "t__x"),
    ],
)
def test_a_name_becomes_a_safe_identifier(name: str, expected: str) -> None:
    assert stubs.identifier(name) == expected


@given(st.text(max_size=30))
def test_any_name_becomes_an_ascii_identifier_that_is_no_keyword(name: str) -> None:
    ident = stubs.identifier(name)
    assert ident.isascii()
    assert ident.isidentifier()
    assert not keyword.iskeyword(ident)
    assert not keyword.issoftkeyword(ident)
    assert not ident.startswith("__")


def _tool(name: str, properties: dict[str, Any] | None = None, required: Any = ()) -> dict:
    schema: dict[str, Any] = {"type": "object", "properties": properties or {}}
    schema["required"] = list(required)
    return {"name": name, "description": f"the {name} tool", "inputSchema": schema}


def test_the_server_prefix_is_a_namespace() -> None:
    [stub] = stubs.stubs(
        [_tool("filesystem__read_text_file", {"path": {"type": "string"}}, ["path"])]
    )
    assert (stub.namespace, stub.function, stub.tool) == (
        "filesystem",
        "read_text_file",
        "filesystem__read_text_file",
    )
    assert stub.signature() == "filesystem.read_text_file(*, path: str) -> str"


def test_only_the_first_separator_splits_and_unprefixed_tools_go_to_tools() -> None:
    found = stubs.stubs([_tool("git__git__log"), _tool("plain"), _tool("__lead"), _tool("tail__")])
    assert [s.qualified for s in found] == [
        "git.git__log",
        "tools.plain",
        "tools.t__lead",
        "tools.tail__",
    ]


def test_names_that_collide_after_cleaning_get_numbers() -> None:
    found = stubs.stubs(
        [_tool("fs__a-b"), _tool("fs__a.b"), _tool("fs__a_b"), _tool("f-s__x"), _tool("f.s__y")]
    )
    assert [s.qualified for s in found] == ["fs.a_b", "fs.a_b_2", "fs.a_b_3", "f_s.x", "f_s_2.y"]
    # Each keeps its own real name.
    assert [s.tool for s in found][:3] == ["fs__a-b", "fs__a.b", "fs__a_b"]


def test_reserved_words_in_servers_tools_and_arguments() -> None:
    [stub] = stubs.stubs(
        [
            _tool(
                "import__class",
                {"from": {"type": "string"}, "lambda": {"type": "integer"}},
                ["from"],
            )
        ]
    )
    assert stub.signature() == "import_.class_(*, from_: str, lambda_: int | None = None) -> str"


@pytest.mark.parametrize(
    ("schema", "annotation"),
    [
        ({"type": "string"}, "str"),
        ({"type": "integer"}, "int"),
        ({"type": "number"}, "float"),
        ({"type": "boolean"}, "bool"),
        ({"type": "array", "items": {"type": "string"}}, "list[str]"),
        ({"type": "array"}, "list[Any]"),
        ({"type": "object"}, "dict[str, Any]"),
        ({"type": ["string", "null"]}, "str | None"),
        ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, "int | str"),
        ({}, "Any"),
        ("nonsense", "Any"),
        (
            {
                "type": "array",
                "items": {
                    "type": "array",
                    "items": {
                        "type": "array",
                        "items": {"type": "array", "items": {"type": "array"}},
                    },
                },
            },
            "list[list[list[list[Any]]]]",
        ),
    ],
)
def test_schemas_become_python_types(schema: object, annotation: str) -> None:
    assert stubs.annotation(schema) == annotation


def test_required_parameters_come_first_and_optional_ones_default_to_none() -> None:
    [stub] = stubs.stubs(
        [_tool("fs__read", {"head": {"type": "integer"}, "path": {"type": "string"}}, ["path"])]
    )
    assert stub.signature() == "fs.read(*, path: str, head: int | None = None) -> str"


def test_malformed_listings_are_skipped_or_read_as_untyped() -> None:
    tools: list[Any] = [
        {"description": "no name"},
        {"name": 7},
        {"name": "fs__x", "inputSchema": "not a schema"},
        {"name": "fs__y", "inputSchema": {"properties": [1, 2], "required": "path"}},
        {"name": "fs__z", "inputSchema": {"properties": {"a": {}}, "required": ["a", 3]}},
    ]
    found = stubs.stubs(tools)
    assert [s.signature() for s in found] == [
        "fs.x() -> str",
        "fs.y() -> str",
        "fs.z(*, a: Any) -> str",
    ]


def _run(source: str) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    namespace: dict[str, Any] = {"call_tool": lambda name, args: calls.append((name, args))}
    exec(compile(source, "<stubs>", "exec"), namespace)  # noqa: S102
    return calls


HOSTILE = [
    'x"); import os; os.system("id"); ("',
    "x'''\nimport os\n'''",
    "fs__${workspace}",
    "fs__read\\\nimport os",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_tool_name_is_data_in_the_generated_module_never_code(name: str) -> None:
    hostile_arg = '"); raise SystemExit("escaped'
    [stub] = stubs.stubs([_tool(name, {hostile_arg: {"type": "string"}}, [hostile_arg])])
    source = stubs.source([stub])
    tree = ast.parse(source)
    # Only the import, one class, and static methods that return one call.
    assert [type(n).__name__ for n in tree.body] == ["ImportFrom", "ClassDef"]
    namespace: dict[str, Any] = {}
    calls: list[tuple[str, dict[str, Any]]] = []
    namespace["call_tool"] = lambda n, a: calls.append((n, a))
    exec(compile(source, "<stubs>", "exec"), namespace)  # noqa: S102
    param = stub.params[0].ident
    getattr(namespace[stub.namespace], stub.function)(**{param: "v"})
    assert calls == [(name, {hostile_arg: "v"})]


def test_the_generated_module_calls_the_real_names_with_the_real_argument_names() -> None:
    found = stubs.stubs(
        [
            _tool(
                "filesystem__read_text_file",
                {"path": {"type": "string"}, "head": {"type": "integer"}},
                ["path"],
            ),
            _tool(
                "web__fetch",
                {"max-length": {"type": "integer"}, "url": {"type": "string"}},
                ["url"],
            ),
        ]
    )
    source = stubs.source(found)
    calls: list[tuple[str, dict[str, Any]]] = []
    namespace: dict[str, Any] = {"call_tool": lambda n, a: calls.append((n, a))}
    exec(compile(source, "<stubs>", "exec"), namespace)  # noqa: S102
    namespace["filesystem"].read_text_file(path="/workspace/a")
    namespace["web"].fetch(url="u", max_length=5)
    assert calls == [
        ("filesystem__read_text_file", {"path": "/workspace/a", "head": None}),
        ("web__fetch", {"url": "u", "max-length": 5}),
    ]
    with pytest.raises(TypeError):
        namespace["filesystem"].read_text_file("/workspace/a")  # keyword-only


def test_the_prompt_listing_bounds_each_description_and_flattens_it() -> None:
    long = {"name": "fs__x", "description": "line one\n\nline two " + "y" * 1000}
    listing = stubs.listing(stubs.stubs([long]))
    first, second = listing.splitlines()
    assert first == "- fs.x() -> str"
    assert second.startswith("    line one line two y")
    assert len(second) == 4 + stubs.DESCRIPTION_CHARS
    assert second.endswith("...")
