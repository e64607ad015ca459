"""The socket streams under the proxy: real loopback sockets and real TLS, bounded in time."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from ironcurtain.fakellm import certs
from ironcurtain.mitm.stream import Stream, connect, listen

HOST = "vendor.test"


def _contexts(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    files = certs.write(directory, [HOST])
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(files.cert, files.key)
    return server, ssl.create_default_context(cafile=str(files.ca))


def _run(
    server_ctx: ssl.SSLContext,
    serve: Callable[[Stream], Awaitable[None]],
    client: Callable[[int], Awaitable[None]],
) -> None:
    """A listener that upgrades each connection to TLS and runs `serve`; then `client(port)`."""

    async def handler(stream: Stream, _: Stream) -> None:
        try:
            await stream.start_tls(server_ctx, ssl_handshake_timeout=5)
            await serve(stream)
        except (OSError, TimeoutError):
            pass
        finally:
            stream.close()

    async def main() -> None:
        async with asyncio.timeout(10):
            listener = await listen(handler, "127.0.0.1", 0)
            try:
                await client(listener.sockets[0].getsockname()[1])
            finally:
                listener.close()

    asyncio.run(main())


async def _read_exactly(stream: Stream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await stream.read(65536)
        if not chunk:
            break
        data += chunk
    return bytes(data)


async def _echo(stream: Stream) -> None:
    while chunk := await stream.read(65536):
        stream.write(chunk)
        await stream.drain()


def test_bytes_written_over_tls_arrive_whole_and_in_order(tmp_path: Path) -> None:
    server_ctx, client_ctx = _contexts(tmp_path)
    payload = bytes(range(256)) * 8192  # 2 MiB: more than the socket buffers hold at once

    async def client(port: int) -> None:
        stream = await connect("127.0.0.1", port, client_ctx, HOST)
        stream.write(payload)
        assert await _read_exactly(stream, len(payload)) == payload
        stream.close()

    _run(server_ctx, _echo, client)


def test_a_vendor_with_an_untrusted_certificate_is_refused(tmp_path: Path) -> None:
    server_ctx, _ = _contexts(tmp_path / "a")
    _, other_ca = _contexts(tmp_path / "b")

    async def client(port: int) -> None:
        with pytest.raises(ssl.SSLCertVerificationError):
            await connect("127.0.0.1", port, other_ca, HOST)

    _run(server_ctx, _echo, client)


def test_a_vendor_certificate_for_another_name_is_refused(tmp_path: Path) -> None:
    server_ctx, client_ctx = _contexts(tmp_path)

    async def client(port: int) -> None:
        with pytest.raises(ssl.SSLCertVerificationError):
            await connect("127.0.0.1", port, client_ctx, "other.test")

    _run(server_ctx, _echo, client)


def test_a_peer_hanging_up_is_noticed_and_writes_then_fail(tmp_path: Path) -> None:
    server_ctx, client_ctx = _contexts(tmp_path)
    seen: list[str] = []
    done = asyncio.Event()

    async def serve(stream: Stream) -> None:
        await stream.wait_closed()  # nothing read: the hang-up alone must be noticed
        seen.append("closed")
        stream.write(b"ignored")  # writing to a gone stream is a no-op
        with pytest.raises(ConnectionError):
            await stream.drain()
        seen.append("drain refused")
        done.set()

    async def client(port: int) -> None:
        stream = await connect("127.0.0.1", port, client_ctx, HOST)
        stream.close()
        await done.wait()  # bounded by _run's timeout

    _run(server_ctx, serve, client)
    assert seen == ["closed", "drain refused"]


def test_an_answer_sent_before_closing_reaches_a_peer_that_is_still_sending(
    tmp_path: Path,
) -> None:
    server_ctx, client_ctx = _contexts(tmp_path)

    async def serve(stream: Stream) -> None:
        await stream.read(100)  # refuse after the first bytes, as the proxy does a large body
        stream.write(b"refused")
        stream.close()

    def client_blocking(port: int) -> bytes:
        raw = socket.create_connection(("127.0.0.1", port), 5)
        with client_ctx.wrap_socket(raw, server_hostname=HOST) as tls:
            tls.sendall(b"x" * 4_000_000)  # keeps sending after the server answered
            return tls.recv(100)

    async def client(port: int) -> None:
        answer = await asyncio.to_thread(client_blocking, port)
        assert answer == b"refused"

    _run(server_ctx, serve, client)


def test_bytes_sent_before_the_tls_handshake_are_refused(tmp_path: Path) -> None:
    server_ctx, _ = _contexts(tmp_path)
    outcome: list[str] = []
    sent = asyncio.Event()

    async def handler(stream: Stream, _: Stream) -> None:
        await sent.wait()
        try:
            await stream.start_tls(server_ctx, ssl_handshake_timeout=5)
        except OSError:  # seen before the upgrade, or taken for a broken ClientHello
            outcome.append("refused")
        finally:
            stream.close()

    async def main() -> None:
        async with asyncio.timeout(10):
            listener = await listen(handler, "127.0.0.1", 0)
            port = listener.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"early bytes that are no ClientHello\r\n")
            await writer.drain()
            sent.set()
            with contextlib.suppress(ConnectionError):
                await reader.read()  # the server closes (a reset: our bytes went unread)
            writer.close()
            listener.close()

    asyncio.run(main())
    assert outcome == ["refused"]
