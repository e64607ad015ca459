"""The reference backend: one `MCPServer` (the SDK's high-level server) with the tools,
resources and prompts the conformance suite's server scenarios name, written from the
scenarios' stated requirements. Served over stdio (as a proxy backend) or Streamable HTTP (to
run the suite against it directly)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio
import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer

# A 1x1 PNG and a tiny WAV (44-byte header, 2 samples), built here rather than shipped.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c63f8cfc0f01f0005000201ab3b3e6f0000000049454e44ae426082"
    )
).decode()
WAV = base64.b64encode(
    b"RIFF"
    + (40).to_bytes(4, "little")
    + b"WAVEfmt "
    + (16).to_bytes(4, "little")
    + (1).to_bytes(2, "little")
    + (1).to_bytes(2, "little")
    + (8000).to_bytes(4, "little")
    + (8000).to_bytes(4, "little")
    + (1).to_bytes(2, "little")
    + (8).to_bytes(2, "little")
    + b"data"
    + (4).to_bytes(4, "little")
    + b"\x80\x80\x80\x80"
).decode()
SCHEMA_2020_12 = "https://json-schema.org/draft/2020-12/schema"


def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


def build(files: Path | None = None) -> MCPServer:
    """The server; with `files`, also a template `file://FILES/{name}` that reads FILES/name as
    it is asked (following any symlink: the proxy, not this server, must refuse what it should
    not read)."""
    server = MCPServer("ironcurtain-reference", version="1.0.0")
    _tools(server)
    _resources(server)
    if files is not None:
        folder = files

        @server.resource(
            f"file://{folder}/{{name}}", name="file", description="A file", mime_type="text/plain"
        )
        def read_file(name: str) -> str:
            return (folder / unquote(name)).read_text()

    _prompts(server)
    _protocol(server)
    return server


def _tools(server: MCPServer) -> None:
    @server.tool(description="Returns a simple text response.")
    def test_simple_text() -> types.CallToolResult:
        return types.CallToolResult(content=[_text("This is a simple text response for testing.")])

    @server.tool(description="Returns an image.")
    def test_image_content() -> types.CallToolResult:
        image = types.ImageContent(type="image", data=PNG, mime_type="image/png")
        return types.CallToolResult(content=[image])

    @server.tool(description="Returns audio.")
    def test_audio_content() -> types.CallToolResult:
        audio = types.AudioContent(type="audio", data=WAV, mime_type="audio/wav")
        return types.CallToolResult(content=[audio])

    @server.tool(description="Returns an embedded resource.")
    def test_embedded_resource() -> types.CallToolResult:
        resource = types.TextResourceContents(
            uri="test://embedded-resource",
            mime_type="text/plain",
            text="This is an embedded resource content.",
        )
        return types.CallToolResult(
            content=[types.EmbeddedResource(type="resource", resource=resource)]
        )

    @server.tool(description="Returns text, an image and a resource.")
    def test_multiple_content_types() -> types.CallToolResult:
        resource = types.TextResourceContents(
            uri="test://mixed-content-resource",
            mime_type="application/json",
            text=json.dumps({"test": "data", "value": 123}),
        )
        return types.CallToolResult(
            content=[
                _text("Multiple content types test:"),
                types.ImageContent(type="image", data=PNG, mime_type="image/png"),
                types.EmbeddedResource(type="resource", resource=resource),
            ]
        )

    @server.tool(description="Sends three log messages while it runs.")
    async def test_tool_with_logging(ctx: Context) -> str:
        await ctx.info("Tool execution started")
        await anyio.sleep(0.05)  # the scenario asks for spaced messages
        await ctx.info("Tool processing data")
        await anyio.sleep(0.05)
        await ctx.info("Tool execution completed")
        return "Tool with logging executed successfully"

    @server.tool(description="Always fails.")
    def test_error_handling() -> types.CallToolResult:
        return types.CallToolResult(
            content=[_text("This tool intentionally returns an error for testing")],
            is_error=True,
        )

    @server.tool(description="Reports progress 0, 50, 100 of 100.")
    async def test_tool_with_progress(ctx: Context) -> str:
        for step in (0, 50, 100):
            await ctx.report_progress(step, 100)
            if step < 100:
                await anyio.sleep(0.05)
        return "Tool with progress executed successfully"

    @server.tool(description="Waits until cancelled; writes MARKER.started, MARKER.cancelled.")
    async def test_wait_for_cancel(marker: str) -> str:
        Path(f"{marker}.started").write_text("started")
        try:
            await anyio.sleep_forever()
        finally:  # cancelled by the client's notifications/cancelled
            Path(f"{marker}.cancelled").write_text("cancelled")
        return "never"

    @server.tool(description="Asks the client's model to answer a prompt.")
    async def test_sampling(prompt: str, ctx: Context) -> str:
        result = await ctx.session.create_message(
            [types.SamplingMessage(role="user", content=_text(prompt))],
            max_tokens=100,
            related_request_id=ctx.request_id,
        )
        content = result.content
        text = content.text if isinstance(content, types.TextContent) else str(content)
        return f"LLM response: {text}"

    @server.tool(description="Asks the user for a name and an e-mail address.")
    async def test_elicitation(message: str, ctx: Context) -> str:
        schema = {
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            "required": ["username", "email"],
        }
        result = await ctx.session.elicit_form(message, schema, ctx.request_id)
        return f"User response: action={result.action}, content={json.dumps(result.content)}"

    @server.tool(description="Elicits with a default for every primitive type.")
    async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
        schema = {
            "type": "object",
            "properties": {
                "name": {"type": "string", "default": "John Doe"},
                "age": {"type": "integer", "default": 30},
                "score": {"type": "number", "default": 95.5},
                "status": {
                    "type": "string",
                    "enum": ["active", "inactive", "pending"],
                    "default": "active",
                },
                "verified": {"type": "boolean", "default": True},
            },
        }
        result = await ctx.session.elicit_form("Please review your details", schema, ctx.request_id)
        return (
            f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}"
        )

    @server.tool(description="Elicits with each kind of enum.")
    async def test_elicitation_sep1330_enums(ctx: Context) -> str:
        def titled(prefix: str, names: list[str]) -> list[dict[str, str]]:
            return [{"const": f"{prefix}{i}", "title": n} for i, n in enumerate(names, 1)]

        schema = {
            "type": "object",
            "properties": {
                "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                "titledSingle": {
                    "type": "string",
                    "oneOf": titled("value", ["First Option", "Second Option", "Third Option"]),
                },
                "legacyEnum": {
                    "type": "string",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"],
                },
                "untitledMulti": {
                    "type": "array",
                    "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
                },
                "titledMulti": {
                    "type": "array",
                    "items": {
                        "anyOf": titled("value", ["First Choice", "Second Choice", "Third Choice"])
                    },
                },
            },
        }
        result = await ctx.session.elicit_form("Pick some options", schema, ctx.request_id)
        return (
            f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}"
        )

    schema_tool = types.Tool(
        name="json_schema_2020_12_tool",
        description="Tool with JSON Schema 2020-12 features",
        input_schema={
            "$schema": SCHEMA_2020_12,
            "type": "object",
            "$defs": {
                "address": {
                    "type": "object",
                    "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
                }
            },
            "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
            "additionalProperties": False,
        },
    )

    @server.tool(name=schema_tool.name, description=schema_tool.description)
    def json_schema_2020_12_tool(name: str = "", address: dict[str, Any] | None = None) -> str:
        return f"schema tool called for {name!r}"

    # The listing advertises the scenario's exact schema, not the one derived from the signature.
    registered = server._tool_manager.get_tool(schema_tool.name)
    assert registered is not None
    registered.parameters = dict(schema_tool.input_schema)


def _resources(server: MCPServer) -> None:
    @server.resource(
        "test://static-text",
        name="static-text",
        description="A text resource",
        mime_type="text/plain",
    )
    def static_text() -> str:
        return "This is the content of the static text resource."

    @server.resource(
        "test://static-binary",
        name="static-binary",
        description="A binary resource",
        mime_type="image/png",
    )
    def static_binary() -> bytes:
        return base64.b64decode(PNG)

    @server.resource(
        "test://template/{id}/data",
        name="template-data",
        description="Data by id",
        mime_type="application/json",
    )
    def template_data(id: str) -> str:
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})

    @server.resource(
        "test://watched-resource",
        name="watched-resource",
        description="A resource to watch",
        mime_type="text/plain",
    )
    def watched() -> str:
        return "Watched resource content."


def _prompts(server: MCPServer) -> None:
    @server.prompt(description="A prompt with no arguments")
    def test_simple_prompt() -> list[dict[str, Any]]:
        return [{"role": "user", "content": _text("This is a simple prompt for testing.")}]

    @server.prompt(description="A prompt with two arguments")
    def test_prompt_with_arguments(arg1: str, arg2: str) -> list[dict[str, Any]]:
        text = f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"
        return [{"role": "user", "content": _text(text)}]

    @server.prompt(description="A prompt that embeds a resource")
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[dict[str, Any]]:
        resource = types.TextResourceContents(
            uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
        )
        return [
            {"role": "user", "content": types.EmbeddedResource(type="resource", resource=resource)},
            {"role": "user", "content": _text("Please process the embedded resource above.")},
        ]

    @server.prompt(description="A prompt with an image")
    def test_prompt_with_image() -> list[dict[str, Any]]:
        image = types.ImageContent(type="image", data=PNG, mime_type="image/png")
        return [
            {"role": "user", "content": image},
            {"role": "user", "content": _text("Please analyze the image above.")},
        ]


def _protocol(server: MCPServer) -> None:
    @server.completion()
    async def complete(
        ref: Any, argument: types.CompletionArgument, context: Any
    ) -> types.Completion:
        words = ["paris", "park", "party"]
        values = [w for w in words if w.startswith(argument.value)]
        return types.Completion(values=values, total=len(values), has_more=False)

    low = server._lowlevel_server

    async def set_level(ctx: Any, params: types.SetLevelRequestParams) -> types.EmptyResult:
        return types.EmptyResult()

    async def subscribe(ctx: Any, params: types.SubscribeRequestParams) -> types.EmptyResult:
        return types.EmptyResult()

    async def unsubscribe(ctx: Any, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        return types.EmptyResult()

    low.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)
    low.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)
    low.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe)
