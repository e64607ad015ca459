"""Tool listings as plain JSON, without pydantic: a strict check of one tool, and a tools/list
result in a protocol version's wire form.

A tool is held in the form the SDK's `Tool` model dumps (aliases, no None fields): the form the
image's saved listings hold (cache.py) and the form a live listing is turned into (backend.py).
`check` refuses anything else, naming the tool and what is wrong with it, and accepts only what
every version's wire schema accepts, so `result` cannot fail later for one version.

`result` does what mcp_types' `serialize_server_result("tools/list", version, ...)` does, field
by field: a version's models ignore fields they do not define (2026-07-28 has no
`execution`), drop None-valued fields, and in the open objects (`extra="allow"`: the schemas,
and 2026's `_meta`) None-valued entries too; declared fields come first, in declaration order,
then the open object's other entries in their own order. A unit test compares the two for every
version, on the image's saved listings and on generated tools.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .wire import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS


class ListingError(ValueError):
    """A tool listing that is not what an MCP server may send; the message says why."""


# -- the check ----------------------------------------------------------------------------------

_TOOL_FIELDS = (
    "name",
    "title",
    "description",
    "inputSchema",
    "execution",
    "outputSchema",
    "icons",
    "annotations",
    "_meta",
)
_HINTS = ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")
_TASK_SUPPORT = ("forbidden", "optional", "required")
_THEMES = ("light", "dark")


def _fail(where: str, why: str) -> ListingError:
    return ListingError(f"{where}: {why}")


def _object(value: object, where: str, known: tuple[str, ...] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise _fail(where, "must be an object")
    if known is not None:
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise _fail(where, f"unknown field {unknown[0]!r}")
    return value


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, "must be a string")
    return value


def _strings(value: object, where: str) -> None:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise _fail(where, "must be a list of strings")


def _schema(value: object, where: str) -> None:
    """A JSON Schema object as both eras accept it: type "object"; $schema, properties and
    required typed when present (None stands for absent, as the SDK's models read it)."""
    schema = _object(value, where)
    if schema.get("type") != "object":
        raise _fail(where, 'type must be "object"')
    if schema.get("$schema") is not None:
        _string(schema["$schema"], f"{where}.$schema")
    properties = schema.get("properties")
    if properties is not None:
        for name, sub in _object(properties, f"{where}.properties").items():
            if not isinstance(sub, dict | bool):
                raise _fail(f"{where}.properties.{name}", "must be a schema (object or boolean)")
    if schema.get("required") is not None:
        _strings(schema["required"], f"{where}.required")


def _finite(value: object, where: str) -> None:
    """No Infinity or NaN anywhere (Python's json reads them; JSON has none; the SDK would turn
    them into null)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(where, "holds a number JSON cannot carry (Infinity or NaN)")
    if isinstance(value, dict):
        for item in value.values():
            _finite(item, where)
    elif isinstance(value, list):
        for item in value:
            _finite(item, where)


def check(tool: object) -> dict[str, Any]:
    """`tool` itself if it is a well-formed tool in the stored form, else ListingError."""
    doc = _object(tool, "tool", _TOOL_FIELDS)
    name = _string(doc.get("name"), "tool.name")
    where = f"tool {name!r}"
    _finite(doc, where)
    for key in ("title", "description"):
        if key in doc:
            _string(doc[key], f"{where}.{key}")
    if "inputSchema" not in doc:
        raise _fail(where, "inputSchema is missing")
    _schema(doc["inputSchema"], f"{where}.inputSchema")
    if "outputSchema" in doc:
        _schema(doc["outputSchema"], f"{where}.outputSchema")
    if "execution" in doc:
        execution = _object(doc["execution"], f"{where}.execution", ("taskSupport",))
        if "taskSupport" in execution and execution["taskSupport"] not in _TASK_SUPPORT:
            raise _fail(f"{where}.execution.taskSupport", f"must be one of {_TASK_SUPPORT}")
    if "icons" in doc:
        if not isinstance(doc["icons"], list):
            raise _fail(f"{where}.icons", "must be a list")
        for i, raw in enumerate(doc["icons"]):
            at = f"{where}.icons[{i}]"
            icon = _object(raw, at, ("src", "mimeType", "sizes", "theme"))
            _string(icon.get("src"), f"{at}.src")
            if "mimeType" in icon:
                _string(icon["mimeType"], f"{at}.mimeType")
            if "sizes" in icon:
                _strings(icon["sizes"], f"{at}.sizes")
            if "theme" in icon and icon["theme"] not in _THEMES:
                raise _fail(f"{at}.theme", f"must be one of {_THEMES}")
    if "annotations" in doc:
        notes = _object(doc["annotations"], f"{where}.annotations", ("title", *_HINTS))
        if "title" in notes:
            _string(notes["title"], f"{where}.annotations.title")
        for hint in _HINTS:
            if hint in notes and not isinstance(notes[hint], bool):
                raise _fail(f"{where}.annotations.{hint}", "must be true or false")
    if "_meta" in doc:
        _object(doc["_meta"], f"{where}._meta")
    return doc


def check_all(tools: object) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise ListingError("tools: must be a list")
    return [check(t) for t in tools]


# -- the per-version form -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Form:
    """A wire model: its fields in declaration order (each with the form of its value: None for
    as-is, a _Form, or a one-element tuple for a list of them) and whether other entries pass."""

    fields: tuple[tuple[str, _Form | tuple[_Form] | None], ...]
    open: bool = False

    def apply(self, value: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, form in self.fields:
            item = value.get(name)
            if item is None:
                continue
            if isinstance(form, _Form):
                item = form.apply(item)
            elif isinstance(form, tuple):
                item = [form[0].apply(i) for i in item]
            out[name] = item
        if self.open:
            declared = {name for name, _ in self.fields}
            out.update((k, v) for k, v in value.items() if k not in declared and v is not None)
        return out


def _plain(*names: str, open: bool = False) -> _Form:
    return _Form(tuple((n, None) for n in names), open)


_ANNOTATIONS = _plain("destructiveHint", "idempotentHint", "openWorldHint", "readOnlyHint", "title")
_ICONS = (_plain("mimeType", "sizes", "src", "theme"),)
_SCHEMA_2025 = _plain("$schema", "properties", "required", "type", open=True)
_TOOL_2025 = _Form(
    (
        ("_meta", None),
        ("annotations", _ANNOTATIONS),
        ("description", None),
        ("execution", _plain("taskSupport")),
        ("icons", _ICONS),
        ("inputSchema", _SCHEMA_2025),
        ("name", None),
        ("outputSchema", _SCHEMA_2025),
        ("title", None),
    )
)
_TOOL_2026 = _Form(
    (
        ("_meta", _plain(open=True)),
        ("annotations", _ANNOTATIONS),
        ("description", None),
        ("icons", _ICONS),
        ("inputSchema", _plain("$schema", "type", open=True)),
        ("name", None),
        ("outputSchema", _plain("$schema", open=True)),
        ("title", None),
    )
)
_LIST_2025 = _Form((("_meta", None), ("nextCursor", None), ("tools", (_TOOL_2025,))))
_LIST_2026 = _Form(
    (
        ("_meta", _plain("io.modelcontextprotocol/serverInfo", open=True)),
        ("cacheScope", None),
        ("nextCursor", None),
        ("resultType", None),
        ("tools", (_TOOL_2026,)),
        ("ttlMs", None),
    )
)


def result(version: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """A tools/list result (its tools passed `check`) in `version`'s wire form."""
    if version in HANDSHAKE_PROTOCOL_VERSIONS:
        return _LIST_2025.apply(data)
    if version in MODERN_PROTOCOL_VERSIONS:
        return _LIST_2026.apply(data)
    raise ValueError(f"version must be a known protocol version, got {version!r}")
