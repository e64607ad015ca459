"""Notifications through the proxy, in front of the reference backend (a real stdio child): a
call's progress and logs ride its own SSE answer and nobody else's; a subscribe is decided as a
read of the URI and audited; updates reach only the session that subscribed to that URI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio

from ironcurtain.mcpproxy.gate import POLICY_DENIED, RESOURCE_NOT_FOUND, Gate
from ironcurtain.mcpproxy.http import McpHttp, Reply
from ironcurtain.mcpproxy.protocol import ServerInfo

from .test_resources import POLICY, run

RELAYING = POLICY.replace(
    "      test_simple_text: {}",
    "      test_simple_text: {}\n      test_tool_with_progress: {}\n"
    "      test_tool_with_logging: {}",
).replace(
    "rules:\n",
    "rules:\n  - name: reference-tools\n    effect: allow\n    reason: harmless\n    server: ref\n",
)
JSON_ONLY = [("host", "p"), ("content-type", "application/json"), ("accept", "application/json")]
BOTH = [*JSON_ONLY[:2], ("accept", "application/json, text/event-stream")]


def rpc(method: str, params: dict[str, Any], id: int | None = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if id is not None:
        message["id"] = id
    return json.dumps(message).encode()


async def read(reply: Reply) -> list[dict[str, Any]]:
    """Every JSON-RPC message of a reply: its SSE events, or its one JSON body."""
    if reply.stream is None:
        return [json.loads(reply.body)]
    chunks: list[bytes] = []

    async def write(chunk: bytes) -> None:
        chunks.append(chunk)

    await reply.stream(write)
    events = b"".join(chunks).split(b"\n\n")
    return [json.loads(e.split(b"data: ", 1)[1]) for e in events if e.strip()]


class Client:
    def __init__(self, app: McpHttp) -> None:
        self.app = app
        self.session = ""

    async def open(self) -> Client:
        init = {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        }
        reply = await self.app.respond("POST", "/mcp", JSON_ONLY, rpc("initialize", init, 1))
        self.session = dict(reply.headers)[b"mcp-session-id"].decode()
        return self

    async def send(
        self, method: str, params: dict[str, Any], id: int = 2, *, sse: bool = True
    ) -> Reply:
        headers = [*(BOTH if sse else JSON_ONLY), ("mcp-session-id", self.session)]
        return await self.app.respond("POST", "/mcp", headers, rpc(method, params, id))

    async def ask(
        self, method: str, params: dict[str, Any], id: int = 2, *, sse: bool = True
    ) -> list[dict[str, Any]]:
        return await read(await self.send(method, params, id, sse=sse))


def app_for(gate: Gate) -> McpHttp:
    return McpHttp(gate, ServerInfo("p", "1", ""))


def test_progress_reaches_only_the_caller_under_its_own_token(tmp_path: Path) -> None:
    async def body(gate: Gate, ws: Path) -> Any:
        app = app_for(gate)
        a, b = await Client(app).open(), await Client(app).open()
        with_token = {"name": "ref__test_tool_with_progress", "_meta": {"progressToken": "a-1"}}
        out: dict[str, Any] = {}

        async def call_a() -> None:
            out["a"] = await a.ask("tools/call", {**with_token, "arguments": {}}, 5)

        async def call_b() -> None:  # another client's call, meanwhile, with no token
            out["b"] = await b.ask("tools/call", {"name": "ref__test_tool_with_progress"}, 5)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call_a)
            tg.start_soon(call_b)
        # The control: the same call whose client takes JSON only gets JSON, no progress.
        out["json"] = await a.ask("tools/call", with_token, 6, sse=False)
        return out

    out, lines = run(tmp_path, body, policy=RELAYING)
    *progress, answer = out["a"]
    assert [p["params"] for p in progress] == [
        {"progressToken": "a-1", "progress": v, "total": 100} for v in (0, 50, 100)
    ]
    assert answer["id"] == 5
    assert "result" in answer
    assert [m.keys() >= {"id", "result"} for m in out["b"]] == [True]
    assert [m.keys() >= {"id", "result"} for m in out["json"]] == [True]
    assert [x["effect"] for x in lines if x["event"] == "decision"] == ["allow"] * 3


def test_logs_reach_a_caller_that_set_a_level_at_that_level(tmp_path: Path) -> None:
    async def body(gate: Gate, ws: Path) -> Any:
        app = app_for(gate)
        loud, strict, silent = [await Client(app).open() for _ in range(3)]
        call = {"name": "ref__test_tool_with_logging"}
        await loud.ask("logging/setLevel", {"level": "debug"})
        await strict.ask("logging/setLevel", {"level": "error"})
        return [
            await loud.ask("tools/call", call, 3),
            await strict.ask("tools/call", call, 3),  # its level is above the messages'
            await silent.ask("tools/call", call, 3),  # set no level: plain JSON
        ]

    (loud, strict, silent), _ = run(tmp_path, body, policy=RELAYING)
    *logs, answer = loud
    assert [m["params"]["data"] for m in logs] == [
        "Tool execution started",
        "Tool processing data",
        "Tool execution completed",
    ]
    assert all(set(m["params"]) <= {"level", "logger", "data"} for m in logs)
    assert "result" in answer
    assert [("result" in m) for m in strict] == [True]
    assert [("result" in m) for m in silent] == [True]


def test_a_subscribe_is_decided_as_a_read_of_its_uri(tmp_path: Path) -> None:
    async def body(gate: Gate, ws: Path) -> Any:
        client = await Client(app_for(gate)).open()
        asks = [
            {"uri": "test://watched-resource"},  # the control: allowed
            {"uri": f"file://{ws}/.env"},  # protected: denied
            {"uri": f"file://{ws}/link.txt"},  # a link out of the workspace: denied
            {"uri": "test://nobody-lists-this"},
        ]
        return [(await client.ask("resources/subscribe", a))[0] for a in asks] + [
            (await client.ask("resources/unsubscribe", asks[0]))[0],
            (await client.ask("resources/unsubscribe", asks[1]))[0],  # never subscribed
        ]

    answers, lines = run(tmp_path, body, policy=RELAYING)
    allowed, protected, link, unknown, unsubscribed, never = answers
    assert allowed["result"] == {}
    assert protected["error"]["code"] == POLICY_DENIED
    assert link["error"]["code"] == POLICY_DENIED
    assert unknown["error"]["code"] == RESOURCE_NOT_FOUND
    assert unsubscribed["result"] == {}
    assert never["result"] == {}
    decisions = [x for x in lines if x["event"] == "decision"]
    assert [(d["tool"], d["request"], d["effect"]) for d in decisions] == [
        ("ref__resources/read", "resources/subscribe", "allow"),
        ("ref__resources/read", "resources/subscribe", "deny"),
        ("ref__resources/read", "resources/subscribe", "deny"),
        ("resources/read", "resources/subscribe", "deny"),
    ]
    assert [x["event"] for x in lines if x["event"] == "unsubscribe"] == ["unsubscribe"]


def test_updates_reach_only_the_session_that_subscribed_to_that_uri(tmp_path: Path) -> None:
    async def body(gate: Gate, ws: Path) -> Any:
        app = app_for(gate)
        watcher, other, denied = [await Client(app).open() for _ in range(3)]
        await watcher.ask("resources/subscribe", {"uri": "test://watched-resource"})
        await denied.ask("resources/subscribe", {"uri": f"file://{ws}/.env"})
        streams = {}
        for name, client in (("watcher", watcher), ("other", other), ("denied", denied)):
            headers = [*BOTH, ("mcp-session-id", client.session)]
            streams[name] = await app.respond("GET", "/mcp", headers, b"")
        again = await app.respond("GET", "/mcp", [*BOTH, ("mcp-session-id", watcher.session)], b"")
        got: dict[str, list[dict[str, Any]]] = {}

        async def follow(name: str) -> None:
            got[name] = await read(streams[name])

        async with anyio.create_task_group() as tg:
            for name in ("watcher", "denied"):
                tg.start_soon(follow, name)
            # Updates wait in the session's stream (bounded) whether or not its GET is open.
            router = gate.backends["ref"].router  # what the backend would write, delivered
            for uri in ("test://watched-resource", f"file://{ws}/.env", "test://static-text"):
                router.deliver(
                    {"method": "notifications/resources/updated", "params": {"uri": uri}}
                )
            for client in (watcher, denied):  # ending the session ends its stream
                headers = [*BOTH, ("mcp-session-id", client.session)]
                await app.respond("DELETE", "/mcp", headers, b"")
        return got, streams["other"].status, again.status, router.watched("test://watched-resource")

    (got, other, again, still), _ = run(tmp_path, body, policy=RELAYING)
    assert [e["params"] for e in got["watcher"]] == [{"uri": "test://watched-resource"}]
    assert got["denied"] == []  # a refused subscribe watches nothing
    assert other == 405  # a session that subscribed to nothing has no stream
    assert again == 409  # one stream per session
    assert not still  # the ended session's subscription is gone
