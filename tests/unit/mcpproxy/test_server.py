"""The proxy's own HTTP/1.1 server on a real socket: framing by httptools, answers in order, one
write per response, refusals that close the connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ironcurtain.mcpproxy.http import Reply, Write
from ironcurtain.mcpproxy.server import HttpServer
from ironcurtain.mcpproxy.service import bind

from .test_http import RecordingGate, initialize, make_app

Client = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


def with_server(body: Callable[[Client, RecordingGate], Awaitable[Any]], **kwargs: Any) -> Any:
    gate = RecordingGate()

    async def go() -> Any:
        sock = bind("127.0.0.1", 0)
        port = sock.getsockname()[1]
        server = HttpServer(make_app(gate), **kwargs)
        await server.start(sock)
        try:
            with anyio.fail_after(10):
                return await body(lambda: asyncio.open_connection("127.0.0.1", port), gate)
        finally:
            await server.close()

    return anyio.run(go)


def post(body: dict[str, Any] | bytes, *extra: str, path: str = "/mcp") -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = [
        f"POST {path} HTTP/1.1",
        "Host: proxy",
        "Content-Type: application/json",
        "Accept: application/json, text/event-stream",
        f"Content-Length: {len(data)}",
        *extra,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines if line)
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, body


def test_requests_on_one_connection_are_answered_in_order_with_the_session() -> None:
    async def body(connect: Client, gate: RecordingGate) -> list[int]:
        reader, writer = await connect()
        writer.write(post(initialize()))
        status, headers, _ = await read_response(reader)
        assert status == 200
        session = f"Mcp-Session-Id: {headers['mcp-session-id']}"
        call = {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "fs__read"}}
        # Three pipelined in one write: answered in order, each its own id.
        writer.write(b"".join(post({**call, "id": n}, session) for n in (1, 2, 3)))
        ids = []
        for _ in range(3):
            status, headers, data = await read_response(reader)
            assert status == 200
            assert "connection" not in headers  # kept alive
            assert "date" in headers
            ids.append(json.loads(data)["id"])
        writer.close()
        return ids

    assert with_server(body) == [1, 2, 3]


def test_a_response_arrives_in_one_piece() -> None:
    async def body(connect: Client, gate: RecordingGate) -> bytes:
        reader, writer = await connect()
        writer.write(post(initialize()))
        first = await reader.read(65536)  # one write by the server: head and body together
        writer.close()
        return first

    first = with_server(body)
    head, _, rest = first.partition(b"\r\n\r\n")
    length = next(
        int(x.split(b": ")[1]) for x in head.split(b"\r\n") if x.startswith(b"content-length")
    )
    assert len(rest) == length


def test_a_chunked_body_is_framed_by_the_parser() -> None:
    async def body(connect: Client, gate: RecordingGate) -> int:
        reader, writer = await connect()
        data = json.dumps(initialize()).encode()
        half = len(data) // 2
        chunks = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (
            half,
            data[:half],
            len(data) - half,
            data[half:],
        )
        writer.write(
            b"POST /mcp HTTP/1.1\r\nHost: p\r\nContent-Type: application/json\r\n"
            b"Accept: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
        )
        status, _, _ = await read_response(reader)
        writer.close()
        return status

    assert with_server(body) == 200


def test_malformed_http_is_answered_400_and_the_connection_closed() -> None:
    async def body(connect: Client, gate: RecordingGate) -> tuple[int, bytes]:
        reader, writer = await connect()
        writer.write(b"POST /mcp HTTP/1.1\r\nContent-Length: nope\r\n\r\n")
        status, headers, _ = await read_response(reader)
        assert headers["connection"] == "close"
        rest = await reader.read()  # EOF: closed by the server
        writer.close()
        return status, rest

    assert with_server(body) == (400, b"")


def test_a_body_over_the_limit_is_refused_and_the_connection_closed() -> None:
    async def body(connect: Client, gate: RecordingGate) -> tuple[int, bytes]:
        reader, writer = await connect()
        big = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x" * 5000}}
        writer.write(post(big))
        status, _, _ = await read_response(reader)
        rest = await reader.read()
        writer.close()
        return status, rest

    status, rest = with_server(body, max_body_bytes=1000)
    assert (status, rest) == (413, b"")


def test_connection_close_is_honoured() -> None:
    async def body(connect: Client, gate: RecordingGate) -> tuple[str, bytes]:
        reader, writer = await connect()
        writer.write(post(initialize(), "Connection: close"))
        _, headers, _ = await read_response(reader)
        rest = await reader.read()
        writer.close()
        return headers["connection"], rest

    assert with_server(body) == ("close", b"")


def test_head_gets_no_body_and_the_connection_stays_usable() -> None:
    async def body(connect: Client, gate: RecordingGate) -> tuple[int, int]:
        reader, writer = await connect()
        writer.write(b"HEAD /mcp HTTP/1.1\r\nHost: p\r\n\r\n" + post(initialize()))
        head = await reader.readuntil(b"\r\n\r\n")  # the HEAD answer: no body follows
        status, _, _ = await read_response(reader)
        writer.close()
        return int(head.split()[1]), status

    assert with_server(body) == (405, 200)


def test_an_idle_connection_is_closed() -> None:
    async def body(connect: Client, gate: RecordingGate) -> bytes:
        reader, writer = await connect()
        rest = await reader.read()  # returns at EOF: the server closed the idle connection
        writer.close()
        return rest

    assert with_server(body, idle_s=0.2) == b""


@hsettings(max_examples=25, deadline=None)
@given(st.binary(min_size=1, max_size=200))
def test_garbage_never_stops_the_server(garbage: bytes) -> None:
    async def body(connect: Client, gate: RecordingGate) -> int:
        _, writer = await connect()
        writer.write(garbage)
        await writer.drain()
        writer.close()
        reader, writer = await connect()  # the next client is served as ever
        writer.write(post(initialize()))
        status, _, _ = await read_response(reader)
        writer.close()
        assert gate.calls == []
        return status

    assert with_server(body) == 200


# -- slow and many clients: a cap, and deadlines that hold from the first byte --------------


async def _trickle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> bytes:
    """Send `data` a byte at a time, a byte every 20 ms, then keep sending spaces, until the
    server answers and closes; return the answer. (Bounded by the caller's fail_after.)"""
    stream = iter(data)
    while True:
        writer.write(bytes([next(stream, 0x20)]))
        try:
            return await asyncio.wait_for(reader.read(), 0.02)  # read() returns at EOF
        except TimeoutError:
            continue  # still open: one more byte


def test_a_request_head_trickled_a_byte_at_a_time_is_cut_off_at_the_head_deadline() -> None:
    async def body(connect: Client, gate: RecordingGate) -> bytes:
        reader, writer = await connect()
        answer = await _trickle(reader, writer, b"POST /mcp HTTP/1.1\r\nX-Slow: ")
        writer.close()
        return answer

    answer = with_server(body, header_s=0.3, idle_s=60)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"Request head not complete within 0.3 s" in answer


def test_a_body_trickled_a_byte_at_a_time_is_cut_off_at_the_body_deadline() -> None:
    async def body(connect: Client, gate: RecordingGate) -> bytes:
        reader, writer = await connect()
        head = post(initialize())
        writer.write(head[:-20])  # the head, and part of the body
        answer = await _trickle(reader, writer, b"")
        writer.close()
        assert gate.calls == []
        return answer

    answer = with_server(body, body_s=0.3, idle_s=60)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"Request body not complete within 0.3 s" in answer


def test_a_head_over_the_limit_is_refused_431() -> None:
    async def body(connect: Client, gate: RecordingGate) -> bytes:
        reader, writer = await connect()
        writer.write(b"POST /mcp HTTP/1.1\r\nX-Big: " + b"a" * 70_000)
        answer = await reader.read()
        writer.close()
        return answer

    assert with_server(body).startswith(b"HTTP/1.1 431 ")


def test_three_hundred_one_byte_connections_are_capped_and_all_cut_off() -> None:
    async def body(connect: Client, gate: RecordingGate) -> tuple[int, int, int]:
        streams = [await connect() for _ in range(300)]
        for _, writer in streams:
            writer.write(b"P")
        answers = [await reader.read() for reader, _ in streams]  # every one ends
        for _, writer in streams:
            writer.close()
        refused = sum(a.startswith(b"HTTP/1.1 503 ") for a in answers)
        timed_out = sum(a.startswith(b"HTTP/1.1 408 ") for a in answers)
        # The control: with the slow ones gone, a new client is served.
        reader, writer = await connect()
        writer.write(post(initialize()))
        status, _, _ = await read_response(reader)
        writer.close()
        return refused, timed_out, status

    refused, timed_out, status = with_server(body, max_connections=32, header_s=1.0, idle_s=60)
    assert refused + timed_out == 300  # none stayed open, none was served
    # 32 in, 268 refused at once; a slow machine may free a slot before the last connect.
    assert timed_out >= 32
    assert refused >= 200
    assert status == 200


def test_a_kept_alive_connection_gets_a_fresh_head_deadline_per_request() -> None:
    # The control: a client that sends whole requests in time is served on and on.
    async def body(connect: Client, gate: RecordingGate) -> list[int]:
        reader, writer = await connect()
        statuses = []
        for _ in range(5):
            writer.write(post(initialize()))
            statuses.append((await read_response(reader))[0])
        writer.close()
        return statuses

    assert with_server(body, header_s=0.5, body_s=0.5) == [200] * 5


def test_a_new_connection_that_sends_nothing_is_closed_at_the_head_deadline() -> None:
    async def body(connect: Client, gate: RecordingGate) -> bytes:
        reader, writer = await connect()
        rest = await reader.read()  # EOF: closed long before the 60 s idle time
        writer.close()
        return rest

    assert with_server(body, header_s=0.3, idle_s=60) == b""


@pytest.mark.parametrize(
    "head",
    [
        b"POST /mcp HTTP/1.1\r\nHost: p\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /mcp HTTP/1.1\r\nHost: p\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
        b"POST /mcp HTTP/1.1\r\nHost: p\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
    ],
    ids=["length and chunked", "two lengths", "one length twice"],
)
def test_an_ambiguous_body_length_is_answered_400_and_never_reaches_the_app(head: bytes) -> None:
    async def body(connect: Client, gate: RecordingGate) -> int:
        reader, writer = await connect()
        writer.write(head + b"0\r\n\r\n")
        status, _, _ = await read_response(reader)
        writer.close()
        assert gate.calls == []
        assert gate.refusals == []  # the framing never got as far as the app
        return status

    assert with_server(body) == 400


class Streaming:
    """A responder whose POST answer is a two-event stream and whose GET only follows."""

    def __init__(self) -> None:
        self.released = anyio.Event()

    async def respond(
        self, method: str, path: str, raw: list[tuple[str, str]], body: bytes | None
    ) -> Reply:
        if method == "GET":

            async def follow(write: Write) -> None:
                try:
                    await write(b"event: message\ndata: {}\n\n")
                    await anyio.sleep_forever()  # until the client goes away
                finally:
                    self.released.set()

            return Reply(200, b"", ((b"content-type", b"text/event-stream"),), follow, True)

        async def answer(write: Write) -> None:
            await write(b"data: 1\n\n")
            await write(b"")  # nothing: no empty chunk, which would end the body
            await write(b"data: 2\n\n")

        return Reply(200, b"", ((b"content-type", b"text/event-stream"),), answer)


def test_a_streamed_answer_is_chunked_and_the_connection_kept_alive() -> None:
    responder = Streaming()

    async def go() -> Any:
        sock = bind("127.0.0.1", 0)
        server = HttpServer(responder)
        await server.start(sock)
        try:
            with anyio.fail_after(10):
                reader, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
                writer.write(post(b"{}") + post(b"{}"))
                answers = []
                for _ in range(2):
                    head = await reader.readuntil(b"\r\n\r\n")
                    body = await reader.readuntil(b"0\r\n\r\n")
                    answers.append((head, body))
                writer.write(b"GET /mcp HTTP/1.1\r\nHost: proxy\r\n\r\n")
                await reader.readuntil(b"data: {}\n\n\r\n")
                writer.close()  # a GET stream ends with its connection
                await responder.released.wait()
                return answers
        finally:
            await server.close()

    answers = anyio.run(go)
    for head, body in answers:
        assert b"transfer-encoding: chunked" in head
        assert b"content-length" not in head
        assert body == b"9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n"


def test_a_get_stream_to_a_client_that_does_not_read_holds_bounded_memory() -> None:
    from ironcurtain.mcpproxy import server as server_module

    done = anyio.Event()
    event = b"data: " + b"x" * 1000 + b"\n\n"

    class Flood:
        async def respond(
            self, method: str, path: str, raw: list[tuple[str, str]], body: bytes | None
        ) -> Reply:
            async def follow(write: Write) -> None:
                for _ in range(20_000):  # 20 MB to a client that reads nothing
                    await write(event)
                done.set()
                await anyio.sleep_forever()

            return Reply(200, b"", ((b"content-type", b"text/event-stream"),), follow, True)

    async def go() -> int:
        sock = bind("127.0.0.1", 0)
        server = HttpServer(Flood())
        await server.start(sock)
        try:
            with anyio.fail_after(10):
                _, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
                writer.write(b"GET /mcp HTTP/1.1\r\nHost: proxy\r\n\r\n")
                await done.wait()
                (connection,) = server.connections
                assert connection.transport is not None
                size = connection.transport.get_write_buffer_size()
                writer.close()
                return size
        finally:
            await server.close()

    size = anyio.run(go)
    # Really full (the kernel's buffers took their share), and no fuller than the bound.
    assert size > server_module.MAX_FOLLOW_BUFFER / 2
    assert size <= server_module.MAX_FOLLOW_BUFFER + len(event) + 16
