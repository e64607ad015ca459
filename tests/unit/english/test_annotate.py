"""Annotation answers as a table: each fault named, checked against the listing's schemas."""

from __future__ import annotations

import json

import pytest

from ironcurtain.english.annotate import ToolInfo, digest, parse, render
from ironcurtain.english.oracle import Rejected

TOOLS = (
    ToolInfo("read", "Read a file.", {"properties": {"path": {"type": "string"},
             "limit": {"type": "integer"}}}),
    ToolInfo("add", "Stage files.", {"properties": {"repo_path": {"type": "string"},
             "files": {"type": "array", "items": {"type": "string"}}}}),
)  # fmt: skip
GOOD = {"read": {"path": "read-path", "limit": "none"},
        "add": {"repo_path": "write-path", "files": "write-path[]"}}  # fmt: skip


def answer(tools: object) -> str:
    return "```json\n" + json.dumps({"tools": tools}) + "\n```"


def changed(tool: str, arg: str, role: object) -> dict:
    doc = json.loads(json.dumps(GOOD))
    doc[tool][arg] = role
    return doc


def test_a_complete_answer_is_taken() -> None:
    assert parse(answer(GOOD), TOOLS, "s") == GOOD


BAD = [
    (changed("read", "path", "none"), "cannot be 'none'"),
    (changed("add", "files", "none"), "cannot be 'none'"),
    (changed("read", "path", "admin"), "not one of the engine's roles"),
    (changed("read", "path", 7), "must be a string"),
    (changed("read", "path", "read-path[]"), "not an array"),
    (changed("add", "files", "write-path"), "needs 'write-path[]'"),
    (changed("read", "sudo", "none"), "'sudo' is not an argument"),
    ({**GOOD, "exec": {}}, "does not offer: 'exec'"),
    ({"read": GOOD["read"]}, "no annotation for tool 'add'"),
    ({"read": {"path": "read-path"}, "add": GOOD["add"]}, "s.read.limit: the argument has no role"),
    ({"read": ["path"], "add": GOOD["add"]}, "must map arguments to roles"),
]


@pytest.mark.parametrize(("tools", "why"), BAD)
def test_a_faulty_answer_is_refused_with_the_fault(tools: object, why: str) -> None:
    with pytest.raises(Rejected) as info:
        parse(answer(tools), TOOLS, "s")
    assert why in str(info.value)


@pytest.mark.parametrize(
    ("text", "why"),
    [("{not json", "not valid JSON"), ('{"tools": {}, "also": 1}', "and nothing else"),
     ("[]", "and nothing else")],
)  # fmt: skip
def test_a_malformed_answer_is_refused(text: str, why: str) -> None:
    with pytest.raises(Rejected) as info:
        parse(text, TOOLS, "s")
    assert why in str(info.value)


def test_the_digest_changes_with_any_schema_change_and_not_with_order() -> None:
    changed_schema = (TOOLS[0], ToolInfo("add", "Stage files.", {"properties": {}}))
    assert digest(TOOLS) == digest(tuple(reversed(TOOLS)))
    assert digest(TOOLS) != digest(changed_schema)


def test_odd_names_are_quoted_in_the_rendered_yaml() -> None:
    import yaml

    text = render({"s": ("${workspace}", {"a: b": {"x\ny": "none"}, "true": {}})})
    doc = yaml.safe_load(text)
    assert doc["servers"]["s"]["tools"] == {"a: b": {"x\ny": "none"}, "true": {}}
