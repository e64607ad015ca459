"""Request bodies: parsed into the shapes we understand, checked, forwarded re-serialised.

Pure functions. `admit(shape, body, policy)` returns the canonical JSON to forward (never the
agent's bytes) or raises Refusal naming the field. What is admitted, per shape:
- strict JSON only: UTF-8, one object, no duplicate key anywhere (a vendor keeping the first of
  two `tools` would see other tools than we checked), no lone surrogate, no NaN/Infinity;
- top-level fields on the shape's list; content parts and blocks of the listed types only;
- media only inline (base64 / `data:` URLs): a URL, a `fileUri` or a file id would make the
  vendor fetch or read something we never saw (an upload endpoint is not admitted, so no file
  id is the session's own);
- tools only of the provider's client types, connectors (`mcp_servers`) and vendor-side search
  (`web_search_options`) never: stripped when the provider's data says `strip_server_tools`,
  refused otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import strictjson
from ..strictjson import StrictJSONError
from .errors import Refusal

_SHOWN = re.compile(r"[A-Za-z0-9_.$-]{1,64}")


def _names(text: str) -> frozenset[str]:
    """A set of names written as one space-separated string (easier to read in long lists)."""
    return frozenset(text.split())


@dataclass(frozen=True, slots=True)
class Tools:
    """The provider's data for vendor-side features: which tool types run on the client."""

    client_types: tuple[str, ...] = ("custom",)
    strip: bool = True  # strip vendor-side tools and options (else refuse them)


def _show(key: object) -> str:
    text = str(key)
    return repr(text) if _SHOWN.fullmatch(text) else "(a key not shown)"


def _refuse(where: str, why: str) -> Refusal:
    return Refusal(400, "content", f"{where}: {why}" if where else why)


_INVALID = "request body is not valid JSON; it cannot be checked"


def _why(exc: StrictJSONError) -> str:
    """What to answer; a key is shown only when it is a plain name (`_SHOWN`)."""
    if exc.kind == "duplicate_key":
        return f"request body refused: duplicate key {_show(exc.key)} in the request body"
    if exc.kind == "constant":
        return f"request body refused: {exc.token} is not JSON"
    if exc.kind == "out_of_range":
        return "request body refused: a number out of range"
    if exc.kind == "lone_surrogate":
        return "request body refused: a lone surrogate (\\ud800-\\udfff) in a string"
    return _INVALID  # not UTF-8, not JSON, deeper than the interpreter's stack


def parse(body: bytes) -> dict[str, Any]:
    """Strict JSON object; Refusal (rule "json") for anything two parsers might read apart."""
    try:
        # Any depth (shapes are walked by code that reads only what it knows); lone surrogates
        # are refused by `dump`, which encodes the whole body anyway, instead of a second walk.
        doc = strictjson.loads(body, max_depth=None, surrogates=False)
    except StrictJSONError as exc:
        raise Refusal(400, "json", _why(exc)) from None
    if not isinstance(doc, dict):
        raise Refusal(400, "json", "request body is not a JSON object")
    return doc


def dump(doc: dict[str, Any]) -> bytes:
    try:
        return strictjson.dumps(doc)
    except StrictJSONError as exc:
        raise Refusal(400, "json", _why(exc)) from None


# ---- helpers over parsed JSON --------------------------------------------------------------


def _obj(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _refuse(where, "must be an object")
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _refuse(where, "must be a list")
    return value


def _fields(doc: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in doc:
        if key not in allowed:
            named = f"{where}.{key}" if where else key
            raise _refuse(named if _SHOWN.fullmatch(key) else where, "field not admitted")


def _typed(block: object, where: str, allowed: frozenset[str]) -> tuple[dict[str, Any], str]:
    block = _obj(block, where)
    kind = block.get("type")
    if not isinstance(kind, str) or kind not in allowed:
        shown = f"type {_show(kind)}" if isinstance(kind, str) else "a missing type"
        raise _refuse(
            f"{where}.type", f"{shown} is not admitted (admitted: {', '.join(sorted(allowed))})"
        )
    return block, kind


def _inline_url(url: object, where: str) -> None:
    if not isinstance(url, str) or not url.startswith("data:"):
        raise _refuse(
            where,
            "only inline data (a data: URL) is admitted; a URL would make the vendor fetch it",
        )


def _tools(doc: dict[str, Any], tools: Tools, kind: Callable[[dict[str, Any]], str | None]) -> None:
    """Keep client tools; strip or refuse the rest (per provider data)."""
    found = doc.get("tools")
    if found is None:
        return
    listed = _list(found, "tools")
    kept = []
    for i, tool in enumerate(listed):
        tool = _obj(tool, f"tools[{i}]")
        name = kind(tool)
        if name is None:
            kept.append(tool)
        elif not tools.strip:
            raise _refuse(f"tools[{i}]", f"{name} runs on the vendor's side and is refused")
    if len(kept) != len(listed):
        if kept:
            doc["tools"] = kept
        else:
            del doc["tools"]
            # A tool_choice naming a removed tool would now be rejected upstream; drop it too.
            doc.pop("tool_choice", None)
            doc.pop("toolConfig", None)
            doc.pop("tool_config", None)


def _vendor_side(doc: dict[str, Any], field: str, tools: Tools) -> None:
    if field in doc:
        if not tools.strip:
            raise _refuse(field, "makes the vendor act on its own side (search, connectors)")
        del doc[field]


NAMESPACE = "namespace"  # a named group of tools (Codex lists its MCP tools in one)


def _typed_tool(tools: Tools) -> Callable[[dict[str, Any]], str | None]:
    def kind(tool: dict[str, Any]) -> str | None:
        value = tool.get("type")
        if value == NAMESPACE and NAMESPACE in tools.client_types:
            # Admitted as its members are: each one a client tool (no namespace inside one).
            inner = Tools(tuple(t for t in tools.client_types if t != NAMESPACE), tools.strip)
            _tools(tool, inner, _typed_tool(inner))
            return None if tool.get("tools") else "an empty namespace"
        if value is None or value in tools.client_types:
            return None
        return f"tool type {_show(value)}"

    return kind


# ---- Anthropic Messages --------------------------------------------------------------------

_ANTHROPIC_TOP = _names(
    "model messages system max_tokens metadata stop_sequences stream temperature top_k top_p "
    "tools tool_choice thinking service_tier context_management output_format output_config "
    "diagnostics mcp_servers"
)
_ANTHROPIC_BLOCKS = _names(
    "text image document tool_use tool_result thinking redacted_thinking search_result"
)
_ANTHROPIC_NESTED = _names("text image document search_result")
_ANTHROPIC_SOURCES = {"image": frozenset({"base64"}), "document": frozenset({"base64", "text"})}


def _anthropic_block(block: object, where: str, allowed: frozenset[str]) -> None:
    block, kind = _typed(block, where, allowed)
    if kind in _ANTHROPIC_SOURCES:
        source = _obj(block.get("source"), f"{where}.source")
        stype = source.get("type")
        if stype == "content" and kind == "document":
            content = source.get("content")
            if not isinstance(content, str):
                for i, inner in enumerate(_list(content, f"{where}.source.content")):
                    _anthropic_block(
                        inner, f"{where}.source.content[{i}]", frozenset({"text", "image"})
                    )
        elif stype not in _ANTHROPIC_SOURCES[kind]:
            raise _refuse(
                f"{where}.source.type",
                f"{_show(stype)} is not admitted: only inline data (base64, text); "
                "a url or file source would make the vendor fetch or read it",
            )
    elif kind in ("tool_result", "search_result"):
        content = block.get("content")
        if content is not None and not isinstance(content, str):
            for i, inner in enumerate(_list(content, f"{where}.content")):
                _anthropic_block(inner, f"{where}.content[{i}]", _ANTHROPIC_NESTED)


def anthropic_messages(doc: dict[str, Any], tools: Tools) -> None:
    _fields(doc, _ANTHROPIC_TOP, "")
    _vendor_side(doc, "mcp_servers", tools)
    for i, message in enumerate(_list(doc.get("messages", []), "messages")):
        message = _obj(message, f"messages[{i}]")
        content = message.get("content")
        if not isinstance(content, str):
            for j, block in enumerate(_list(content, f"messages[{i}].content")):
                _anthropic_block(block, f"messages[{i}].content[{j}]", _ANTHROPIC_BLOCKS)
    system = doc.get("system")
    if system is not None and not isinstance(system, str):
        for i, block in enumerate(_list(system, "system")):
            _anthropic_block(block, f"system[{i}]", frozenset({"text"}))
    _tools(doc, tools, _typed_tool(tools))


# ---- OpenAI Chat Completions ---------------------------------------------------------------

_CHAT_TOP = _names(
    "model messages frequency_penalty logit_bias logprobs top_logprobs max_tokens "
    "max_completion_tokens n presence_penalty response_format seed service_tier stop stream "
    "stream_options temperature top_p tools tool_choice parallel_tool_calls user functions "
    "function_call modalities audio prediction reasoning_effort store metadata verbosity "
    "prompt_cache_key safety_identifier web_search_options"
)
_CHAT_PARTS = _names("text image_url input_audio file refusal")


def _chat_part(part: object, where: str) -> None:
    part, kind = _typed(part, where, _CHAT_PARTS)
    if kind == "image_url":
        _inline_url(
            _obj(part.get("image_url"), f"{where}.image_url").get("url"), f"{where}.image_url.url"
        )
    elif kind == "file":
        file = _obj(part.get("file"), f"{where}.file")
        if "file_data" not in file or set(file) - {"file_data", "filename"}:
            raise _refuse(
                f"{where}.file",
                "only inline file_data is admitted; a file_id names a file we never saw",
            )


def openai_chat(doc: dict[str, Any], tools: Tools) -> None:
    _fields(doc, _CHAT_TOP, "")
    _vendor_side(doc, "web_search_options", tools)
    for i, message in enumerate(_list(doc.get("messages", []), "messages")):
        message = _obj(message, f"messages[{i}]")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            for j, part in enumerate(_list(content, f"messages[{i}].content")):
                _chat_part(part, f"messages[{i}].content[{j}]")
    _tools(doc, tools, _typed_tool(tools))


# ---- OpenAI Responses ----------------------------------------------------------------------

# `prompt` (a stored prompt) is not admitted: it can bring tools configured at the vendor.
# `client_metadata`: Codex's string ids (installation, session, thread, window).
_RESPONSES_TOP = _names(
    "model input instructions max_output_tokens max_tool_calls metadata parallel_tool_calls "
    "previous_response_id reasoning service_tier store stream stream_options temperature text "
    "tool_choice tools top_logprobs top_p truncation user include background conversation "
    "prompt_cache_key safety_identifier client_metadata"
)
_RESPONSES_ITEMS = _names(
    "message function_call function_call_output custom_tool_call custom_tool_call_output "
    "reasoning item_reference"
)
_RESPONSES_PARTS = _names(
    "input_text output_text refusal input_image input_file input_audio summary_text"
)


def _responses_part(part: object, where: str) -> None:
    part, kind = _typed(part, where, _RESPONSES_PARTS)
    if kind == "input_image":
        if "file_id" in part or "image_url" not in part:
            raise _refuse(
                f"{where}.file_id", "a file id names a file we never saw; send inline data"
            )
        _inline_url(part["image_url"], f"{where}.image_url")
    elif kind == "input_file":
        for field in ("file_url", "file_id"):
            if field in part:
                raise _refuse(
                    f"{where}.{field}",
                    "only inline file_data is admitted; the vendor would fetch or read it",
                )


def _responses_content(content: object, where: str) -> None:
    if content is not None and not isinstance(content, str):
        for j, part in enumerate(_list(content, where)):
            _responses_part(part, f"{where}[{j}]")


def openai_responses(doc: dict[str, Any], tools: Tools) -> None:
    _fields(doc, _RESPONSES_TOP, "")
    items = doc.get("input")
    if items is not None and not isinstance(items, str):
        for i, item in enumerate(_list(items, "input")):
            item = _obj(item, f"input[{i}]")
            if "type" not in item and "role" in item:
                kind = "message"
            else:
                _, kind = _typed(item, f"input[{i}]", _RESPONSES_ITEMS)
            if kind == "message":
                _responses_content(item.get("content"), f"input[{i}].content")
            elif kind in ("function_call_output", "custom_tool_call_output"):
                _responses_content(item.get("output"), f"input[{i}].output")
    _tools(doc, tools, _typed_tool(tools))


# ---- Google Gemini -------------------------------------------------------------------------

_GEMINI_TOP = _names(
    "contents systemInstruction system_instruction tools toolConfig tool_config safetySettings "
    "safety_settings generationConfig generation_config cachedContent cached_content"
)
_GEMINI_PART = _names(
    "text inlineData inline_data functionCall function_call functionResponse function_response "
    "thought thoughtSignature thought_signature videoMetadata video_metadata"
)
_GEMINI_FETCH = frozenset({"fileData", "file_data"})


def _gemini_content(content: object, where: str) -> None:
    content = _obj(content, where)
    for j, part in enumerate(_list(content.get("parts", []), f"{where}.parts")):
        part = _obj(part, f"{where}.parts[{j}]")
        for key in part:
            if key in _GEMINI_FETCH:
                raise _refuse(
                    f"{where}.parts[{j}].{key}",
                    "fileUri makes the vendor fetch it; only inlineData is admitted",
                )
        _fields(part, _GEMINI_PART, f"{where}.parts[{j}]")


def _gemini_tool(tool: dict[str, Any]) -> str | None:
    extra = set(tool) - {"functionDeclarations", "function_declarations"}
    return None if not extra else f"tool {_show(sorted(extra)[0])}"


def gemini(doc: dict[str, Any], tools: Tools) -> None:
    _fields(doc, _GEMINI_TOP, "")
    for i, content in enumerate(_list(doc.get("contents", []), "contents")):
        _gemini_content(content, f"contents[{i}]")
    for field in ("systemInstruction", "system_instruction"):
        if field in doc:
            _gemini_content(doc[field], field)
    _tools(doc, tools, _gemini_tool)


_SHAPES: dict[str, Callable[[dict[str, Any], Tools], None]] = {
    "anthropic-messages": anthropic_messages,
    "openai-chat": openai_chat,
    "openai-responses": openai_responses,
    "gemini": gemini,
}


def admit(shape: str, body: bytes, tools: Tools) -> bytes:
    """The body to forward for an endpoint of `shape`, or Refusal naming what was refused."""
    return admit_parsed(shape, body, tools)[0]


def admit_parsed(shape: str, body: bytes, tools: Tools) -> tuple[bytes, dict[str, Any] | None]:
    """As admit(), and the checked document the bytes are the serialisation of (None for a
    shape without a body), so the next step (bounds.py) reads it instead of parsing again.
    The document passed every check here: strict JSON, no duplicate key anywhere."""
    if shape == "none":
        if body:
            raise Refusal(400, "content", "this endpoint takes no request body")
        return body, None
    check = _SHAPES[shape]  # providers.py admits only known shapes
    doc = parse(body)
    check(doc, tools)
    return dump(doc), doc
