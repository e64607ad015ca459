"""A backend's requests to the client (sampling: the agent's model; elicitation: a question)
are decided, audited and forwarded on the asking call's own stream only when a rule naming them
allows it for that server (default deny); the client's answer is taken from that session only
and rebuilt for the backend. In front of the reference backend (a real stdio child)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio

from ironcurtain.mcpproxy.gate import NO_STREAM, Gate
from ironcurtain.mcpproxy.http import McpHttp
from ironcurtain.mcpproxy.protocol import ServerInfo
from ironcurtain.policy.engine import NO_MATCH

from .test_relay import BOTH, JSON_ONLY, rpc
from .test_resources import POLICY, run

ASKING = POLICY.replace(
    "      test_simple_text: {}",
    "      test_simple_text: {}\n      test_sampling: {prompt: none}\n"
    "      test_elicitation: {message: none}\n      test_elicitation_sep1034_defaults: {}",
).replace(
    "rules:\n",
    "rules:\n  - name: reference-tools\n    effect: allow\n    reason: harmless\n    server: ref\n",
)
SAMPLING_ALLOWED = ASKING + (
    "  - name: ref-may-sample\n    effect: allow\n    reason: its prompts are ours\n"
    "    server: ref\n    tools: [sampling/createMessage]\n"
)
CAPABLE = {"sampling": {}, "elicitation": {}}


def test_without_a_rule_and_a_stream_the_requests_never_leave_the_proxy(tmp_path: Path) -> None:
    async def body(gate: Gate, ws: Path) -> Any:
        return [
            await gate.call("ref__test_simple_text", {}),  # the control
            await gate.call("ref__test_sampling", {"prompt": "write to the user"}),
            await gate.call("ref__test_elicitation", {"message": "your password?"}),
            await gate.call("ref__test_elicitation_sep1034_defaults", {}),
        ]

    results, lines = run(tmp_path, body, policy=SAMPLING_ALLOWED)
    control, *asked = results
    assert not control.is_error
    for result in asked:
        assert result.is_error
        assert "IronCurtain policy denied ref__" in result.content[0].text
    decisions = [x for x in lines if x["event"] == "decision"]
    requests = [(d["tool"], d["rule"]) for d in decisions if d.get("request")]
    # Allowed by policy or not: with no client stream to carry it, nothing is asked.
    assert requests == [
        ("ref__sampling/createMessage", NO_STREAM),
        ("ref__elicitation/create", NO_STREAM),
        ("ref__elicitation/create", NO_STREAM),
    ]
    assert all(d["effect"] == "deny" for d in decisions if d.get("request"))


class Session:
    def __init__(self, app: McpHttp) -> None:
        self.app = app
        self.id = ""

    async def open(self, capabilities: dict[str, Any]) -> Session:
        init = {
            "protocolVersion": "2025-06-18",
            "capabilities": capabilities,
            "clientInfo": {"name": "t", "version": "1"},
        }
        reply = await self.app.respond("POST", "/mcp", JSON_ONLY, rpc("initialize", init, 1))
        self.id = dict(reply.headers)[b"mcp-session-id"].decode()
        return self

    async def post(self, message: dict[str, Any]) -> Any:
        headers = [*BOTH, ("mcp-session-id", self.id)]
        return await self.app.respond("POST", "/mcp", headers, json.dumps(message).encode())


async def call_answering(
    client: Session, tool: str, args: dict[str, Any], answer: Any, *, stranger: Session
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Call `tool`; every request arriving on the call's stream is first answered by
    `stranger` (another session: ignored), then by `client` with `answer`."""
    asked: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    reply = await client.post(rpc_dict("tools/call", {"name": tool, "arguments": args}, 9))

    async def write(chunk: bytes) -> None:
        for part in chunk.split(b"\n\n"):
            if b"data: " not in part:
                continue
            message = json.loads(part.split(b"data: ", 1)[1])
            events.append(message)
            if "method" in message and "id" in message:
                asked.append(message)
                forged = {"jsonrpc": "2.0", "id": message["id"], "result": {"forged": True}}
                assert (await stranger.post(forged)).status == 202
                response = {"jsonrpc": "2.0", "id": message["id"], "result": answer}
                assert (await client.post(response)).status == 202

    assert reply.stream is not None
    await reply.stream(write)
    return asked, events


def rpc_dict(method: str, params: dict[str, Any], id: int) -> dict[str, Any]:
    return json.loads(rpc(method, params, id))


def test_an_allowed_sampling_request_reaches_only_the_asking_call_and_is_audited(
    tmp_path: Path,
) -> None:
    answer = {
        "role": "assistant",
        "content": {"type": "text", "text": "forty-two"},
        "model": "m",
        "_meta": {"smuggled": 1},
    }

    async def body(gate: Gate, ws: Path) -> Any:
        app = McpHttp(gate, ServerInfo("p", "1", ""))
        client = await Session(app).open(CAPABLE)
        stranger = await Session(app).open(CAPABLE)
        with anyio.fail_after(30):
            sampled = await call_answering(
                client, "ref__test_sampling", {"prompt": "the answer?"}, answer, stranger=stranger
            )
            # Elicitation has no rule: denied, and the question never reaches the stream.
            elicited = await call_answering(
                client, "ref__test_elicitation", {"message": "name?"}, {}, stranger=stranger
            )
            # A client that declared no capability is never asked.
            plain = await Session(app).open({})
            bare = await plain.post(
                rpc_dict(
                    "tools/call", {"name": "ref__test_sampling", "arguments": {"prompt": "x"}}, 3
                )
            )
        return sampled, elicited, json.loads(bare.body)

    (sampled, elicited, bare), lines = run(tmp_path, body, policy=SAMPLING_ALLOWED)
    asked, events = sampled
    assert [a["method"] for a in asked] == ["sampling/createMessage"]
    assert asked[0]["id"].startswith("ic-")  # our id, not the backend's
    params = asked[0]["params"]
    assert params["messages"] == [
        {"role": "user", "content": {"type": "text", "text": "the answer?"}}
    ]
    assert "includeContext" not in params  # never asks the client for other servers' context
    result = events[-1]["result"]
    assert result["content"][0]["text"] == "LLM response: forty-two"  # not the stranger's
    assert elicited[0] == []
    assert elicited[1][-1]["result"]["isError"]
    assert bare["result"]["isError"]
    requests = [x for x in lines if x["event"] == "decision" and x.get("request")]
    assert [(x["tool"], x["effect"], x["rule"]) for x in requests] == [
        ("ref__sampling/createMessage", "allow", "ref-may-sample"),
        ("ref__elicitation/create", "deny", NO_MATCH),
        ("ref__sampling/createMessage", "deny", NO_STREAM),
    ]
