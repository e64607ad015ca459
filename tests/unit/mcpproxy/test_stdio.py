"""The lean stdio session to a backend. The real servers (filesystem, git, fetch) are driven
through it by test_gate/test_proxy/test_wire; here a scripted peer provokes what real servers do
rarely: answers out of order, a death mid-call, a hang, a request to us, a junk line."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from ironcurtain.mcpproxy.errors import BackendError
from ironcurtain.mcpproxy.stdio import StdioClient
from ironcurtain.mcpproxy.wire import CONNECTION_CLOSED

PEER = r"""
import json, os, sys
VERSION = os.environ.get("PEER_VERSION", "2025-11-25")
held = []
log = open(os.environ["PEER_LOG"], "a", buffering=1)

def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()

def result(request_id, value):
    send({"jsonrpc": "2.0", "id": request_id, "result": value})

for line in sys.stdin:
    message = json.loads(line)
    log.write(line)
    method, request_id = message.get("method"), message.get("id")
    params = message.get("params") or {}
    if method == "initialize":
        result(request_id, {"protocolVersion": VERSION, "capabilities": {"tools": {}},
                            "serverInfo": {"name": "peer", "version": "0"}})
    elif method == "tools/list":
        result(request_id, {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]})
    elif method == "tools/call":
        name, args = params["name"], params.get("arguments", {})
        text = lambda t: {"content": [{"type": "text", "text": t}], "isError": False}
        if name == "echo":
            result(request_id, text(json.dumps(args)))
        elif name == "hold":
            held.append((request_id, args))
        elif name == "release":  # answer the held calls last-first, then this one
            for rid, a in reversed(held):
                result(rid, text(json.dumps(a)))
            held.clear()
            result(request_id, text("released"))
        elif name == "die":
            os._exit(3)
        elif name == "hang":
            pass
        elif name == "ask":
            send({"jsonrpc": "2.0", "id": "srv-1", "method": "ping"})
            send({"jsonrpc": "2.0", "id": "srv-2", "method": "roots/list"})
            answers = [json.loads(sys.stdin.readline()) for _ in range(2)]
            result(request_id, text(json.dumps(answers)))
        elif name == "junk":
            sys.stdout.write("this is not json\n")
            send({"jsonrpc": "2.0", "method": "notifications/message", "params": {}})
            send({"jsonrpc": "2.0", "id": 999999, "result": {}})
            result(request_id, text("after junk"))
        elif name == "error":
            send({"jsonrpc": "2.0", "id": request_id,
                  "error": {"code": -32602, "message": "bad arguments", "data": "x"}})
        elif name == "env":
            result(request_id, text(json.dumps(dict(os.environ))))
        elif name == "ambiguous":  # what a hostile server writes: readers disagree on it
            sys.stdout.write(args["template"].replace("ID", str(request_id)) + "\n")
            sys.stdout.flush()
        elif name == "big":
            result(request_id, text("x" * args["size"]))
"""


@pytest.fixture
def peer(tmp_path: Path) -> tuple[Path, Path]:
    script = tmp_path / "peer.py"
    script.write_text(PEER)
    return script, tmp_path / "peer.log"


def with_client(
    peer: tuple[Path, Path],
    body: Callable[[StdioClient], Awaitable[Any]],
    env: dict[str, str] | None = None,
) -> Any:
    script, log = peer

    async def go() -> Any:
        with anyio.fail_after(20):
            client = StdioClient(
                sys.executable, [str(script)], {"PEER_LOG": str(log), **(env or {})}
            )
            async with client:
                return await body(client)

    return anyio.run(go)


def text(result: Any) -> str:
    return result.content[0].text


def test_concurrent_calls_answered_out_of_order_reach_their_own_callers(
    peer: tuple[Path, Path],
) -> None:
    async def body(client: StdioClient) -> dict[int, str]:
        answers: dict[int, str] = {}

        async def held(n: int) -> None:
            answers[n] = text(await client.call_tool("hold", {"n": n}, 10))

        async with anyio.create_task_group() as tg:
            for n in range(5):
                tg.start_soon(held, n)
            await anyio.wait_all_tasks_blocked()
            assert text(await client.call_tool("release", {}, 10)) == "released"
        return answers

    assert with_client(peer, body) == {n: json.dumps({"n": n}) for n in range(5)}


def test_a_call_in_flight_when_the_backend_dies_fails_at_once_and_so_do_later_ones(
    peer: tuple[Path, Path],
) -> None:
    async def body(client: StdioClient) -> tuple[int, int, float]:
        began = anyio.current_time()
        with pytest.raises(BackendError) as during:
            await client.call_tool("die", {}, 60)
        took = anyio.current_time() - began
        with pytest.raises(BackendError) as after:
            await client.call_tool("echo", {}, 60)
        return during.value.code, after.value.code, took

    during, after, took = with_client(peer, body)
    assert during == CONNECTION_CLOSED
    assert after == CONNECTION_CLOSED
    assert took < 5  # not the 60 s timeout: the death itself ends the call


def test_a_call_that_outlives_its_timeout_is_cancelled_at_the_backend(
    peer: tuple[Path, Path],
) -> None:
    async def body(client: StdioClient) -> str:
        with pytest.raises(TimeoutError):
            await client.call_tool("hang", {}, 0.2)
        return text(await client.call_tool("echo", {"still": "alive"}, 10))

    assert with_client(peer, body) == json.dumps({"still": "alive"})
    logged = [json.loads(x) for x in peer[1].read_text().splitlines()]
    hung = next(m["id"] for m in logged if m.get("params", {}).get("name") == "hang")
    cancels = [m for m in logged if m.get("method") == "notifications/cancelled"]
    assert [c["params"]["requestId"] for c in cancels] == [hung]


def test_the_handshake_comes_first_and_requests_to_us_are_answered(
    peer: tuple[Path, Path],
) -> None:
    async def body(client: StdioClient) -> Any:
        return json.loads(text(await client.call_tool("ask", {}, 10)))

    ping, roots = with_client(peer, body)
    assert ping == {"jsonrpc": "2.0", "id": "srv-1", "result": {}}
    assert roots["id"] == "srv-2"
    assert roots["error"]["code"] == -32601  # we offer no roots: refused, not ignored
    logged = [json.loads(x) for x in peer[1].read_text().splitlines()]
    assert [m.get("method") for m in logged[:2]] == ["initialize", "notifications/initialized"]
    assert logged[0]["params"]["clientInfo"]["name"] == "ironcurtain-mcp-proxy"


def test_junk_notifications_and_stray_answers_are_ignored(peer: tuple[Path, Path]) -> None:
    async def body(client: StdioClient) -> str:
        return text(await client.call_tool("junk", {}, 10))

    assert with_client(peer, body) == "after junk"


def test_a_backend_error_keeps_its_code_and_message(peer: tuple[Path, Path]) -> None:
    async def body(client: StdioClient) -> BackendError:
        with pytest.raises(BackendError) as caught:
            await client.call_tool("error", {}, 10)
        return caught.value

    error = with_client(peer, body)
    assert (error.code, error.message) == (-32602, "bad arguments")


def test_the_backend_gets_only_the_safe_environment_and_its_own_variables(
    peer: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-real-key")

    async def body(client: StdioClient) -> dict[str, str]:
        return json.loads(text(await client.call_tool("env", {}, 10)))

    env = with_client(peer, body, {"EXTRA": "yes"})
    assert "ANTHROPIC_API_KEY" not in env
    assert env["EXTRA"] == "yes"
    assert set(env) <= {"HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "EXTRA", "PEER_LOG"} | {
        k
        for k in env
        if k.startswith("LC_") or k == "PWD"  # set by the interpreter/loader
    }


def test_a_large_result_arriving_in_pieces_is_read_whole(peer: tuple[Path, Path]) -> None:
    async def body(client: StdioClient) -> str:
        return text(await client.call_tool("big", {"size": 3_000_000}, 30))

    assert with_client(peer, body) == "x" * 3_000_000


def test_a_backend_speaking_an_unknown_protocol_version_is_refused(
    peer: tuple[Path, Path],
) -> None:
    async def body(client: StdioClient) -> None:
        raise AssertionError("should not have started")

    with pytest.raises(BackendError, match="protocol version"):
        with_client(peer, body, {"PEER_VERSION": "1999-01-01"})


def test_leaving_the_session_stops_the_child(peer: tuple[Path, Path]) -> None:
    async def body(client: StdioClient) -> int:
        assert client._process is not None
        return client._process.pid

    pid = with_client(peer, body)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_an_answer_over_the_limit_is_refused_unread_and_the_session_goes_on(
    peer: tuple[Path, Path],
) -> None:
    import tracemalloc

    from ironcurtain.mcpproxy.errors import ResultTooLarge

    script, log = peer

    async def go() -> tuple[str, list[str], str, int]:
        with anyio.fail_after(60):
            client = StdioClient(
                sys.executable, [str(script)], {"PEER_LOG": str(log)}, max_line_bytes=1_000_000
            )
            async with client:
                held: list[str] = []

                async def hold(n: int) -> None:
                    held.append(text(await client.call_tool("hold", {"n": n}, 30)))

                tracemalloc.start()
                try:
                    async with anyio.create_task_group() as tg:
                        for n in range(3):  # other calls waiting meanwhile keep their answers
                            tg.start_soon(hold, n)
                        await anyio.wait_all_tasks_blocked()
                        with pytest.raises(ResultTooLarge) as refused:
                            await client.call_tool("big", {"size": 40_000_000}, 30)
                        _, peak = tracemalloc.get_traced_memory()
                        await client.call_tool("release", {}, 30)
                finally:
                    tracemalloc.stop()
                after = text(await client.call_tool("echo", {"ok": 1}, 10))
                return refused.value.message, held, after, peak

    message, held, after, peak = anyio.run(go)
    assert "limit of 1000000 bytes (max_result_bytes)" in message
    assert sorted(held) == [json.dumps({"n": n}) for n in range(3)]
    assert after == json.dumps({"ok": 1})
    assert peak < 8_000_000  # a 40 MB answer, never held


def test_an_answer_just_under_the_limit_is_read(peer: tuple[Path, Path]) -> None:
    script, log = peer

    async def go() -> str:
        with anyio.fail_after(30):
            client = StdioClient(
                sys.executable, [str(script)], {"PEER_LOG": str(log)}, max_line_bytes=1_000_000
            )
            async with client:
                return text(await client.call_tool("big", {"size": 900_000}, 30))

    assert len(anyio.run(go)) == 900_000


@pytest.mark.parametrize(
    "template",
    [
        '{"jsonrpc":"2.0","id":ID,"result":{"content":[],"isError":true},'
        '"result":{"content":[{"type":"text","text":"second"}]}}',
        '{"jsonrpc":"2.0","id":ID,"result":{"content":[{"type":"text","text":"\\ud800"}]}}',
        '{"jsonrpc":"2.0","id":ID,"result":{"content":[],"n":NaN}}',
        '{"jsonrpc":"2.0","id":ID,"result":{"content":[],"n":1e999}}',
    ],
    ids=["duplicate-key", "lone-surrogate", "nan", "out-of-range"],
)
def test_an_answer_readers_disagree_on_fails_its_call_at_once_and_the_session_goes_on(
    peer: tuple[Path, Path], template: str
) -> None:
    async def body(client: StdioClient) -> tuple[BackendError, str]:
        with pytest.raises(BackendError) as refused:
            await client.call_tool("ambiguous", {"template": template}, 30)
        return refused.value, text(await client.call_tool("echo", {"ok": 1}, 10))

    error, after = with_client(peer, body)
    assert "JSON that is refused" in error.message
    assert after == json.dumps({"ok": 1})  # control: the next call is answered
