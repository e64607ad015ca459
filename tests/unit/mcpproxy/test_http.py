"""The proxy's Streamable HTTP layer, driven in-process over ASGI with a recording gate: the
handshake era (initialize, sessions), the 2026-07-28 per-request envelope, and every refusal —
none of which may reach the gate."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import anyio
import mcp_types as types
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.mcpproxy import protocol
from ironcurtain.mcpproxy.http import McpHttp, accepts_json, json_media_type
from ironcurtain.mcpproxy.protocol import SERVER_INFO_META_KEY, ServerInfo
from ironcurtain.mcpproxy.wire import HEADER_MISMATCH

JSON = "application/json"
BOTH = "application/json, text/event-stream"
MODERN = "2026-07-28"
TOOL: dict[str, Any] = {
    "name": "fs__read",
    "description": "read a file",
    "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}},
}


class RecordingGate:
    def __init__(self, *, fail: bool = False) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.refusals: list[tuple[str, str]] = []
        self.fail = fail

    def tools(self) -> list[dict[str, Any]]:
        return [TOOL]

    def input_schema(self, name: str) -> Mapping[str, Any] | None:
        return TOOL["inputSchema"] if name == TOOL["name"] else None

    async def call(
        self, name: str, arguments: Mapping[str, Any] | None, *, listener: Any = None
    ) -> types.CallToolResult:
        if self.fail:
            raise RuntimeError("secret internals")
        self.calls.append((name, dict(arguments or {})))
        text = types.TextContent(type="text", text=f"called {name}")
        return types.CallToolResult(content=[text], is_error=False)

    async def refuse(self, request: str, reason: str) -> None:
        self.refusals.append((request, reason))

    async def list_resources(self) -> dict[str, Any]:
        return {"resources": [{"uri": "note://a", "name": "fs__a"}]}

    async def list_resource_templates(self) -> dict[str, Any]:
        return {"resourceTemplates": []}

    async def list_prompts(self) -> dict[str, Any]:
        return {"prompts": []}

    async def read_resource(self, uri: str) -> dict[str, Any]:
        self.calls.append(("resources/read", {"uri": uri}))
        return {"contents": [{"uri": uri, "text": "a note"}]}

    async def get_prompt(self, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append(("prompts/get", {"name": name, **arguments}))
        return {"messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}]}

    async def complete(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"completion": {"values": []}}


class Exchange:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def exchange(
    app: McpHttp,
    method: str = "POST",
    body: bytes | dict[str, Any] | list[Any] = b"",
    headers: Mapping[str, str] | list[tuple[str, str]] = (),  # type: ignore[assignment]
    path: str = "/mcp",
) -> Exchange:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs],
    }
    incoming = [{"type": "http.request", "body": raw, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def go() -> None:
        with anyio.fail_after(10):
            await app(scope, receive, send)

    anyio.run(go)
    start, body_message = sent
    response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert int(response_headers["content-length"]) == len(body_message["body"])
    return Exchange(start["status"], response_headers, body_message["body"])


def make_app(gate: RecordingGate | None = None, **kwargs: Any) -> McpHttp:
    info = ServerInfo("ironcurtain-mcp-proxy", "9.9", "checked and audited")
    return McpHttp(gate or RecordingGate(), info, **kwargs)


def initialize(version: str = "2025-11-25") -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "claude-code", "version": "2"},
        },
    }


def open_session(
    app: McpHttp, version: str = "2025-11-25", host: str | None = None
) -> dict[str, str]:
    first = {"Content-Type": JSON, "Accept": BOTH, **({"Host": host} if host else {})}
    answer = exchange(app, body=initialize(version), headers=first)
    assert answer.status == 200, answer.body
    return {
        "Content-Type": JSON,
        "Accept": BOTH,
        "Mcp-Session-Id": answer.headers["mcp-session-id"],
        "MCP-Protocol-Version": answer.json["result"]["protocolVersion"],
    }


def rpc(method: str, params: dict[str, Any] | None = None, id: Any = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    return message


READ = {"name": "fs__read", "arguments": {"path": "/ws/a.txt"}}


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        ("2024-11-05", "2024-11-05"),
        ("2025-03-26", "2025-03-26"),
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("2099-01-01", "2025-11-25"),  # unknown: we answer our latest, the client decides
    ],
)
def test_a_handshake_session_negotiates_lists_calls_and_ends(offered: str, answered: str) -> None:
    gate = RecordingGate()
    app = make_app(gate)
    init = exchange(app, body=initialize(offered), headers={"Content-Type": JSON, "Accept": BOTH})
    assert init.status == 200
    assert init.headers["content-type"] == JSON
    result = init.json["result"]
    assert result["protocolVersion"] == answered
    assert result["serverInfo"] == {"name": "ironcurtain-mcp-proxy", "version": "9.9"}
    assert result["capabilities"] == protocol.HANDSHAKE_CAPABILITIES
    assert set(result["capabilities"]) == {
        "tools",
        "resources",
        "prompts",
        "completions",
        "logging",
    }
    session = init.headers["mcp-session-id"]
    assert len(session) >= 32
    assert session.isascii()
    headers = {"Content-Type": JSON, "Accept": BOTH, "Mcp-Session-Id": session}

    notified = exchange(
        app, body={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
    )
    assert notified.status == 202
    assert notified.body == b""
    assert exchange(app, body=rpc("ping", id="p"), headers=headers).json == {
        "jsonrpc": "2.0",
        "id": "p",
        "result": {},
    }
    # A log level is checked and kept: a later call's log notifications are relayed at it.
    leveled = exchange(
        app, body=rpc("logging/setLevel", {"level": "info"}, id="l"), headers=headers
    )
    assert leveled.json == {"jsonrpc": "2.0", "id": "l", "result": {}}
    bad = exchange(app, body=rpc("logging/setLevel", {"level": "loud"}, id="b"), headers=headers)
    assert bad.json["error"]["code"] == -32602
    listed = exchange(app, body=rpc("tools/list", id=2), headers=headers).json["result"]
    assert [t["name"] for t in listed["tools"]] == ["fs__read"]
    assert "resultType" not in listed  # a 2026 field never reaches an older client
    # With a level set, a call whose client accepts SSE is answered as a stream (test_relay);
    # one that accepts JSON only, as JSON.
    called = exchange(app, body=rpc("tools/call", READ, id=3), headers={**headers, "Accept": JSON})
    assert called.status == 200
    assert called.headers["mcp-session-id"] == session
    assert called.json["result"]["content"][0]["text"] == "called fs__read"
    assert gate.calls == [("fs__read", {"path": "/ws/a.txt"})]

    assert exchange(app, "DELETE", headers=headers).status == 200
    after = exchange(app, body=rpc("tools/call", READ, id=4), headers={**headers, "Accept": JSON})
    assert after.status == 404
    assert len(gate.calls) == 1


S = "SESSION"  # replaced by a live session id
H = {"Content-Type": JSON, "Accept": BOTH}
HS = {**H, "Mcp-Session-Id": S}
CALL = rpc("tools/call", READ)
NO_CLIENT = {"protocolVersion": "2025-11-25", "capabilities": {}}
NO_VERSION = {"capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}
REFUSALS: list[tuple[str, str, Any, dict[str, str], int, int | None]] = [
    # (case, method, body, headers, HTTP status, JSON-RPC code or None)
    ("no session, not initialize", "POST", CALL, H, 400, -32600),
    ("unknown session", "POST", CALL, {**H, "Mcp-Session-Id": "nope"}, 404, -32600),
    ("text/plain body", "POST", CALL, {**HS, "Content-Type": "text/plain"}, 415, -32600),
    ("no content type", "POST", CALL, {"Accept": BOTH, "Mcp-Session-Id": S}, 415, -32600),
    ("accepts only SSE", "POST", CALL, {**HS, "Accept": "text/event-stream"}, 406, -32600),
    ("no Accept", "POST", CALL, {"Content-Type": JSON, "Mcp-Session-Id": S}, 406, -32600),
    ("not JSON", "POST", b"{nope", HS, 400, -32700),
    ("a batch", "POST", [CALL], HS, 400, -32600),
    ("null id", "POST", rpc("tools/call", READ, id=None), HS, 400, -32600),
    ("unsupported version", "POST", CALL, {**HS, "MCP-Protocol-Version": "1999"}, 400, -32022),
    ("unknown method", "POST", rpc("sampling/createMessage"), HS, 200, -32601),
    ("tools/call without a name", "POST", rpc("tools/call", {"arguments": {}}), HS, 200, -32602),
    ("list arguments", "POST", rpc("tools/call", {**READ, "arguments": [1]}), HS, 200, -32602),
    ("init without clientInfo", "POST", {**initialize(), "params": NO_CLIENT}, H, 400, -32602),
    ("init without a version", "POST", {**initialize(), "params": NO_VERSION}, H, 400, -32602),
    ("GET (no server stream)", "GET", b"", {"Accept": "text/event-stream"}, 405, None),
    ("PUT", "PUT", b"", {"Mcp-Session-Id": S}, 405, None),
    ("DELETE without a session", "DELETE", b"", {}, 400, None),
    ("DELETE of an unknown session", "DELETE", b"", {"Mcp-Session-Id": "nope"}, 404, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "body", "headers", "status", "code"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
def test_malformed_or_unexpected_requests_are_refused_and_never_reach_the_gate(
    method: str, body: Any, headers: dict[str, str], status: int, code: int | None
) -> None:
    gate = RecordingGate()
    app = make_app(gate)
    session = open_session(app)["Mcp-Session-Id"]
    headers = {k: session if v == S else v for k, v in headers.items()}
    answer = exchange(app, method, body, headers)
    assert answer.status == status, answer.body
    if code is not None:
        assert answer.json["error"]["code"] == code
        assert answer.json["jsonrpc"] == "2.0"
    assert gate.calls == []


def test_get_says_which_methods_are_allowed() -> None:
    answer = exchange(make_app(), "GET", headers={"Accept": "text/event-stream"})
    assert answer.status == 405
    assert answer.headers["allow"] == "POST, DELETE"


def test_other_paths_are_not_found() -> None:
    assert (
        exchange(
            make_app(), body=initialize(), headers={"Content-Type": JSON, "Accept": BOTH}, path="/"
        ).status
        == 404
    )


def test_a_body_over_the_limit_is_refused_before_parsing() -> None:
    gate = RecordingGate()
    app = make_app(gate, max_body_bytes=1000)
    headers = open_session(app)
    big = rpc("tools/call", {"name": "fs__read", "arguments": {"path": "x" * 2000}})
    assert exchange(app, body=big, headers=headers).status == 413
    assert gate.calls == []


def test_sessions_are_bounded_and_the_least_recently_used_is_forgotten() -> None:
    app = make_app(max_sessions=2)
    first, second = open_session(app), open_session(app)
    assert exchange(app, body=rpc("ping"), headers=first).status == 200  # first is now newest
    third = open_session(app)
    assert exchange(app, body=rpc("ping"), headers=second).status == 404
    assert exchange(app, body=rpc("ping"), headers=first).status == 200
    assert exchange(app, body=rpc("ping"), headers=third).status == 200


def test_a_failing_gate_answers_a_bare_internal_error() -> None:
    app = make_app(RecordingGate(fail=True))
    answer = exchange(app, body=rpc("tools/call", READ), headers=open_session(app))
    assert answer.status == 500
    assert answer.json["error"] == {"code": -32603, "message": "Internal error"}
    assert b"secret" not in answer.body


@pytest.mark.parametrize(
    ("host", "origin", "status"),
    [
        ("mcp-proxy:8080", None, 200),
        ("mcp-proxy:8080", "http://mcp-proxy:8080", 200),
        ("evil.example:8080", None, 421),
        (None, None, 421),
        ("mcp-proxy:8080", "http://evil.example", 403),
    ],
)
def test_host_and_origin_are_checked_when_hosts_are_configured(
    host: str | None, origin: str | None, status: int
) -> None:
    app = make_app(allowed_hosts=("mcp-proxy:8080",))
    headers = {"Content-Type": JSON, "Accept": BOTH}
    if host is not None:
        headers["Host"] = host
    if origin is not None:
        headers["Origin"] = origin
    assert exchange(app, body=initialize(), headers=headers).status == status


@pytest.mark.parametrize(
    ("accept", "ok"),
    [
        (BOTH, True),
        (JSON, True),
        ("application/*", True),
        ("*/*", True),
        ("text/event-stream;q=1, application/json;q=0.5", True),
        ("text/event-stream", False),
        ("text/html", False),
        ("", False),
    ],
)
def test_accept_headers_admit_json_with_wildcards(accept: str, ok: bool) -> None:
    assert accepts_json(accept) is ok


# -- 2026-07-28: the per-request envelope --------------------------------------------------

META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "wire", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


def modern_headers(method: str, name: str | None = None) -> list[tuple[str, str]]:
    headers = [
        ("Content-Type", JSON),
        ("Accept", BOTH),
        ("MCP-Protocol-Version", MODERN),
        ("Mcp-Method", method),
    ]
    return headers if name is None else [*headers, ("Mcp-Name", name)]


def test_a_modern_call_is_served_without_a_session_and_stamped() -> None:
    gate = RecordingGate()
    app = make_app(gate)
    answer = exchange(
        app,
        body=rpc("tools/call", {**READ, "_meta": META}),
        headers=modern_headers("tools/call", "fs__read"),
    )
    assert answer.status == 200, answer.body
    assert "mcp-session-id" not in answer.headers
    result = answer.json["result"]
    assert result["resultType"] == "complete"
    assert result["_meta"][SERVER_INFO_META_KEY] == {
        "name": "ironcurtain-mcp-proxy",
        "version": "9.9",
    }
    assert gate.calls == [("fs__read", {"path": "/ws/a.txt"})]


def test_modern_discovery_and_listing_carry_cache_hints() -> None:
    app = make_app()
    found = exchange(
        app, body=rpc("server/discover", {"_meta": META}), headers=modern_headers("server/discover")
    )
    assert found.json["result"]["supportedVersions"] == [MODERN]
    assert found.json["result"]["ttlMs"] == 0
    listed = exchange(
        app, body=rpc("tools/list", {"_meta": META}), headers=modern_headers("tools/list")
    )
    assert listed.json["result"]["cacheScope"] == "private"
    assert listed.json["result"]["tools"][0]["name"] == "fs__read"


MCALL = rpc("tools/call", {**READ, "_meta": META})
MLIST = rpc("sampling/createMessage", {"_meta": META})
MINIT = {**initialize(), "params": {**initialize()["params"], "_meta": META}}
TWICE = [*modern_headers("tools/call", "fs__read"), ("Mcp-Method", "tools/call")]
MODERN_REFUSALS: list[tuple[str, Any, list[tuple[str, str]], int, int]] = [
    ("no _meta envelope", CALL, modern_headers("tools/call", "fs__read"), 400, -32602),
    ("Mcp-Name disagrees", MCALL, modern_headers("tools/call", "fs__write"), 400, HEADER_MISMATCH),
    ("Mcp-Method disagrees", MCALL, modern_headers("tools/list", "fs__read"), 400, HEADER_MISMATCH),
    ("Mcp-Method sent twice", MCALL, TWICE, 400, HEADER_MISMATCH),
    ("unknown method", MLIST, modern_headers("sampling/createMessage"), 404, -32601),
    ("initialize is not a 2026 method", MINIT, modern_headers("initialize"), 404, -32601),
    ("a posted response", {"jsonrpc": "2.0", "id": 1, "result": {}}, TWICE[:4], 400, -32600),
    ("not JSON", b"{", modern_headers("tools/call"), 400, -32700),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [case[1:] for case in MODERN_REFUSALS],
    ids=[case[0] for case in MODERN_REFUSALS],
)
def test_modern_requests_that_disagree_with_themselves_are_refused(
    body: Any, headers: list[tuple[str, str]], status: int, code: int
) -> None:
    gate = RecordingGate()
    answer = exchange(make_app(gate), body=body, headers=headers)
    assert answer.status == status, answer.body
    assert answer.json["error"]["code"] == code
    assert gate.calls == []


def test_a_modern_notification_is_acknowledged() -> None:
    answer = exchange(
        make_app(),
        body={"jsonrpc": "2.0", "method": "notifications/cancelled"},
        headers=modern_headers("notifications/cancelled"),
    )
    assert answer.status == 202


# -- no body, however malformed, gets past the parser into the gate -------------------------


@given(st.binary(max_size=200))
def test_any_body_in_a_session_is_answered_and_never_forwarded(body: bytes) -> None:
    gate = RecordingGate()
    app = make_app(gate)
    answer = exchange(app, body=body, headers=open_session(app))
    assert answer.status in (200, 202, 400)
    assert gate.calls == []  # random bytes are never a valid tools/call


@given(
    st.fixed_dictionaries(
        {
            "jsonrpc": st.just("2.0"),
            "method": st.sampled_from(["tools/call", "tools/list", "ping"]),
        },
        optional={
            "id": st.none() | st.integers() | st.text(max_size=3) | st.booleans(),
            "params": st.none()
            | st.integers()
            | st.fixed_dictionaries(
                {},
                optional={
                    "name": st.none() | st.integers() | st.just("fs__read"),
                    "arguments": st.none()
                    | st.lists(st.integers(), max_size=2)
                    | st.just({"path": "p"}),
                },
            ),
        },
    )
)
def test_near_miss_messages_reach_the_gate_only_as_a_well_formed_tools_call(
    message: dict[str, Any],
) -> None:
    gate = RecordingGate()
    app = make_app(gate)
    answer = exchange(app, body=message, headers=open_session(app))
    assert answer.status in (200, 202, 400)
    params = message.get("params")
    well_formed = (
        message["method"] == "tools/call"
        and isinstance(message.get("id"), int | str)
        and not isinstance(message.get("id"), bool)
        and isinstance(params, dict)
        and params.get("name") == "fs__read"
        and isinstance(params.get("arguments"), dict | None)
    )
    assert bool(gate.calls) is well_formed


# -- strict at the edge: ambiguous headers, inexact media types, odd JSON -------------------


def _in_session(app: McpHttp, extra: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [*open_session(app).items(), *extra]


EDGE_REFUSALS: list[tuple[str, list[tuple[str, str]], bytes | None, int, str]] = [
    # (case, headers added to a live session's, body (None: a tools/call), status, reason)
    ("Host twice (evil, then ours)", [("Host", "evil.example"), ("Host", "mcp-proxy:8080")], None, 400, "host header appears more than once"),  # noqa: E501
    ("Host twice (ours, then evil)", [("Host", "mcp-proxy:8080"), ("Host", "evil.example")], None, 400, "host header appears more than once"),  # noqa: E501
    ("Host twice, both ours", [("Host", "mcp-proxy:8080"), ("Host", "mcp-proxy:8080")], None, 400, "host header appears more than once"),  # noqa: E501
    ("Origin twice", [("Host", "mcp-proxy:8080"), ("Origin", "http://mcp-proxy:8080"), ("Origin", "http://evil")], None, 400, "origin header appears"),  # noqa: E501
    ("Content-Type twice", [("Host", "mcp-proxy:8080"), ("Content-Type", JSON)], None, 400, "content-type header appears"),  # noqa: E501
    ("Mcp-Session-Id twice", [("Host", "mcp-proxy:8080"), ("Mcp-Session-Id", "other")], None, 400, "mcp-session-id header appears"),  # noqa: E501
    ("a foreign Host", [("Host", "evil.example:8080")], None, 421, "'evil.example:8080' is not allowed"),  # noqa: E501
    ("NaN", [("Host", "mcp-proxy:8080")], b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fs__read","arguments":{"path":NaN}}}', 400, "NaN is not a JSON number"),  # noqa: E501
    ("a lone surrogate", [("Host", "mcp-proxy:8080")], b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fs__read","arguments":{"path":"\\ud800"}}}', 400, "lone surrogate"),  # noqa: E501
    ("nesting 960 deep", [("Host", "mcp-proxy:8080")], b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fs__read","arguments":{"path":' + b"[" * 960 + b"]" * 960 + b"}}}", 400, "nested more than 64"),  # noqa: E501
    ("a duplicate key", [("Host", "mcp-proxy:8080")], b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fs__read","name":"fs__write"}}', 400, "'name' appears twice"),  # noqa: E501
]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "body", "status", "reason"),
    [c[1:] for c in EDGE_REFUSALS],
    ids=[c[0] for c in EDGE_REFUSALS],
)
def test_an_ambiguous_or_odd_request_is_refused_saying_why_and_audited(
    extra: list[tuple[str, str]], body: bytes | None, status: int, reason: str
) -> None:
    gate = RecordingGate()
    app = make_app(gate, allowed_hosts=("mcp-proxy:8080",))
    headers = [
        *{**open_session(app, host="mcp-proxy:8080"), "Content-Type": JSON}.items(),
        *extra,
    ]
    answer = exchange(app, body=rpc("tools/call", READ) if body is None else body, headers=headers)
    assert answer.status == status, answer.body
    assert reason in answer.body.decode()
    assert gate.calls == []
    assert len(gate.refusals) == 1
    assert reason in gate.refusals[0][1]


def test_a_well_formed_call_with_one_of_each_header_is_still_served() -> None:
    gate = RecordingGate()
    app = make_app(gate, allowed_hosts=("mcp-proxy:8080",))
    headers = {
        **open_session(app, host="mcp-proxy:8080"),
        "Host": "mcp-proxy:8080",
        "Origin": "http://mcp-proxy:8080",
        "Content-Type": "application/json; charset=UTF-8",
    }
    body = rpc("tools/call", {"name": "fs__read", "arguments": {"path": "/ws/😀 é.txt"}})
    answer = exchange(app, body=body, headers=headers)
    assert answer.status == 200, answer.body
    assert gate.calls == [("fs__read", {"path": "/ws/😀 é.txt"})]
    assert gate.refusals == []


@pytest.mark.parametrize(
    ("media", "ok"),
    [
        ("application/json", True),
        ("Application/JSON", True),
        ("application/json; charset=utf-8", True),
        ('application/json;charset="UTF-8"', True),
        ("application/json;", True),
        ("application/jsonx", False),
        ("application/json-seq", False),
        ("application/json5", False),
        ("application/jsonp; charset=utf-8", False),
        ("application/json; charset=latin-1", False),
        ("application/json; charset=utf-16", False),
        ("application/json; boundary=x", False),
        ("text/json", False),
        ("application/x-json", False),
        ("", False),
    ],
)
def test_only_json_itself_is_a_json_media_type(media: str, ok: bool) -> None:
    assert json_media_type(media) is ok
    gate = RecordingGate()
    app = make_app(gate)
    headers = {**open_session(app), "Content-Type": media}
    answer = exchange(app, body=rpc("tools/call", READ), headers=headers)
    assert (answer.status == 200) is ok, answer.body
    assert len(gate.calls) == int(ok)
    assert len(gate.refusals) == int(not ok)


@given(st.text(max_size=40))
def test_a_media_type_is_json_only_when_it_names_json_exactly(media: str) -> None:
    if json_media_type(media):
        assert media.partition(";")[0].strip().lower() == "application/json"


odd_arguments = st.recursive(
    st.floats() | st.text(st.characters(codec=None, exclude_categories=()), max_size=4),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=6,
)


@given(odd_arguments)
def test_odd_arguments_reach_the_gate_exactly_or_are_refused_and_audited(value: Any) -> None:
    gate = RecordingGate()
    app = make_app(gate)
    body = json.dumps(rpc("tools/call", {"name": "fs__read", "arguments": {"v": value}}))
    answer = exchange(app, body=body.encode(), headers=open_session(app))
    if gate.calls:
        assert answer.status == 200
        assert gate.calls == [("fs__read", {"v": value})]
        assert json.dumps(gate.calls[0][1]) == json.dumps({"v": value})  # no NaN survived
    else:
        assert answer.status == 400
        assert answer.json["error"]["code"] == -32700
        assert len(gate.refusals) == 1


def test_modern_reads_and_gets_reach_the_gate_only_when_mcp_name_agrees() -> None:
    gate = RecordingGate()
    app = make_app(gate)
    read = rpc("resources/read", {"uri": "note://a", "_meta": META})
    answer = exchange(app, body=read, headers=modern_headers("resources/read", "note://a"))
    assert answer.status == 200, answer.body
    assert answer.json["result"]["contents"][0]["text"] == "a note"
    assert answer.json["result"]["resultType"] == "complete"
    got = rpc("prompts/get", {"name": "fs__p", "arguments": {"x": "1"}, "_meta": META})
    gotten = exchange(app, body=got, headers=modern_headers("prompts/get", "fs__p"))
    assert gotten.json["result"]["messages"][0]["content"]["text"] == "hi"
    assert gate.calls == [
        ("resources/read", {"uri": "note://a"}),
        ("prompts/get", {"name": "fs__p", "x": "1"}),
    ]
    # Routing headers that disagree with the body never reach the gate.
    for body, headers in (
        (read, modern_headers("resources/read", "note://b")),
        (read, modern_headers("resources/read")),
        (got, modern_headers("prompts/get", "fs__q")),
    ):
        refused = exchange(app, body=body, headers=headers)
        assert refused.status == 400, refused.body
        assert refused.json["error"]["code"] == HEADER_MISMATCH
    assert len(gate.calls) == 2
