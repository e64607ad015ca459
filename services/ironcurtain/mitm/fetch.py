"""One bounded upstream request for the package registries: connect, send, read it all.

Registry responses are read whole (up to a limit) because the proxy must see a file completely
before the agent gets any of it: the index is filtered, and a file's hash is checked against the
index and written to the audit log first. One connection per request, closed afterwards.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import h11

from .settings import Override

READ_SIZE = 65536


class FetchError(Exception):
    """The upstream could not be reached, spoke broken HTTP, was too slow or sent too much."""


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n == name), None)


async def fetch(
    scheme: str,
    host: str,
    port: int,
    method: str,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    tls: Callable[[str], ssl.SSLContext],
    override: Override | None,
    limit: int,
    connect_timeout: float,
    response_timeout: float,
) -> Fetched:
    """`method target` to host (or its override), TLS verified for `host` when https."""
    address, real_port = (override.host, override.port) if override else (host, port)
    context = tls(host) if scheme == "https" else None
    try:
        async with asyncio.timeout(connect_timeout):
            reader, writer = await asyncio.open_connection(
                address,
                real_port,
                ssl=context,
                server_hostname=host if context else None,
                limit=READ_SIZE,
            )
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        # The exception's text names the address we dialled (internal in a session): not shown.
        if isinstance(exc, ssl.SSLCertVerificationError):
            raise FetchError(f"{host} unreachable: its certificate is not trusted") from None
        raise FetchError(f"{host} unreachable ({type(exc).__name__})") from None
    conn = h11.Connection(h11.CLIENT)
    try:
        head = [(b"host", host.encode()), *headers, (b"connection", b"close")]
        writer.write(
            conn.send(h11.Request(method=method.encode(), target=target, headers=head))
            + conn.send(h11.EndOfMessage())
        )
        chunks: list[bytes] = []
        size = 0
        response: h11.Response | None = None
        async with asyncio.timeout(response_timeout):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(READ_SIZE))
                elif isinstance(event, h11.Response):
                    response = event
                elif isinstance(event, h11.Data):
                    size += len(event.data)
                    if size > limit:
                        raise FetchError(f"{host} sent more than {limit} bytes")
                    chunks.append(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise FetchError(f"{host} closed the connection before the end")
        assert response is not None
        return Fetched(response.status_code, tuple(response.headers), b"".join(chunks))
    except TimeoutError:
        raise FetchError(f"{host} did not answer in time") from None
    except (OSError, ssl.SSLError, h11.ProtocolError) as exc:
        raise FetchError(f"{host}: malformed answer ({type(exc).__name__})") from None
    finally:
        writer.close()
