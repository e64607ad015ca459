"""The backends' only way out: a checking HTTP proxy (CONNECT for https, absolute-form for http).

Backends that make requests (fetch, git over http) get HTTP(S)_PROXY pointing here. Each
connection, redirect hops included since each hop is a new request, is checked: the host must be
one a current allowed call permitted (or on the static list), the port 80 or 443, and *every*
address the name resolves to must be public (no loopback, private, link-local, metadata, ...).
The connection then goes to the checked address itself, so a second DNS answer cannot differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h11

logger = logging.getLogger(__name__)

_METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_MAX_HEAD = 16 * 1024
_CONNECT_TIMEOUT_S = 10.0
_IDLE_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class EgressRules:
    hosts: frozenset[str] = frozenset()  # always allowed host names (besides permitted ones)
    ports: frozenset[int] = frozenset({80, 443})
    # Exact "ip:port" endpoints allowed even though not public (an internal docs mirror; tests).
    addresses: frozenset[str] = field(default_factory=frozenset)


def address_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_private:
        return "a private address"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved or not ip.is_global:
        return "not a public address"
    return None


class Egress:
    def __init__(self, rules: EgressRules) -> None:
        self.rules = rules
        # (leg, host) -> calls in flight permitting it. A room's leg is its server's name: a
        # permit for one room's call opens nothing to another room. The loopback listener (the
        # proxy's own children) is the leg None.
        self._permitted: dict[tuple[str | None, str], int] = {}
        self._leg_names: set[str] = set()
        self._server: asyncio.base_events.Server | None = None
        self._legs: list[asyncio.base_events.Server] = []  # unix sockets into rooms
        self.port = 0
        self.refused: list[str] = []  # recent refusals, newest last (bounded), for logs and tests

    @contextlib.contextmanager
    def permit(self, hosts: Iterable[str], server: str | None = None) -> Iterator[None]:
        """While an allowed call of `server` runs, its URL hosts may be reached (and only
        while), through that server's own leg (its room's socket) alone."""
        leg = server if server in self._leg_names else None
        keys = [(leg, h.lower().rstrip(".")) for h in hosts]
        for key in keys:
            self._permitted[key] = self._permitted.get(key, 0) + 1
        try:
            yield
        finally:
            for key in keys:
                self._permitted[key] -= 1
                if not self._permitted[key]:
                    del self._permitted[key]

    def env(self) -> dict[str, str]:
        url = f"http://127.0.0.1:{self.port}"
        return {k: url for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")} | {
            "NO_PROXY": "",
            "no_proxy": "",
        }

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await asyncio.start_server(self._handle, host, port, limit=_MAX_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve_unix(self, path: str, server: str) -> None:
        """The same checker on a unix socket: `server`'s room's only way out (sandbox.py relays
        its loopback port here); only the room's uid can reach the 0700 folder it is in."""
        self._leg_names.add(server)
        handle = functools.partial(self._handle, leg=server)
        self._legs.append(await asyncio.start_unix_server(handle, path, limit=_MAX_HEAD))
        os.chmod(path, 0o600)

    async def close(self) -> None:
        for leg in self._legs:
            leg.close()
            await leg.wait_closed()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def check(self, host: str, port: int, leg: str | None = None) -> tuple[str | None, str]:
        """(address to connect to, "") or (None, why it is refused), for a connection that
        came in on `leg` (a room's server name; None: the loopback listener)."""
        host = host.lower().rstrip(".").strip("[]")
        if (leg, host) not in self._permitted and host not in self.rules.hosts:
            return None, f"host {host} is not allowed by the policy for this call"
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            return None, f"host {host} does not resolve ({exc.strerror})"
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            return None, f"host {host} has no address"
        excepted = True
        for text in addresses:
            ip = ipaddress.ip_address(text.split("%")[0])
            if f"{ip}:{port}" in self.rules.addresses:
                continue
            excepted = False
            problem = address_problem(ip)
            if problem is not None:
                return None, f"host {host} resolves to {ip}, {problem}"
        if not excepted and port not in self.rules.ports:
            return None, f"port {port} is not allowed"
        return addresses[0], ""

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, leg: str | None = None
    ) -> None:
        try:
            await self._serve(reader, writer, leg)
        except (OSError, h11.ProtocolError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except Exception:
            logger.exception("egress: unexpected failure; connection closed")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, leg: str | None
    ) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
        request = await _next_event(conn, reader)
        if not isinstance(request, h11.Request):
            return
        method = request.method.decode("ascii", "replace")
        target = request.target.decode("ascii", "replace")
        if method == "CONNECT":
            host, _, port_text = target.rpartition(":")
            scheme = "https"
        else:
            parts = urlsplit(target)
            host, port_text, scheme = parts.hostname or "", str(parts.port or 80), parts.scheme
        if scheme not in ("http", "https") or not host or not port_text.isdigit():
            await _refuse(conn, writer, 400, f"malformed proxy request target {target!r}")
            return
        port = int(port_text)
        address, why = await self.check(host, port, leg)
        if address is None:
            self.refused = [*self.refused[-99:], f"{method} {target}: {why}"]
            logger.warning("egress refused %s %s: %s", method, target, why)
            await _refuse(conn, writer, 403, f"IronCurtain egress refused {target}: {why}")
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(address, port), _CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError) as exc:
            await _refuse(conn, writer, 502, f"cannot connect to {host}:{port}: {exc}")
            return
        try:
            if method == "CONNECT":
                writer.write(conn.send(h11.Response(status_code=200, headers=[])))
                await writer.drain()
                data, _closed = conn.trailing_data
                if data:
                    up_writer.write(data)
                await _pipe_both(reader, writer, up_reader, up_writer)
            else:
                await _forward_http(
                    conn, reader, writer, request, parts_path(target), up_reader, up_writer
                )
        finally:
            up_writer.close()
            with contextlib.suppress(OSError):
                await up_writer.wait_closed()


def parts_path(target: str) -> bytes:
    parts = urlsplit(target)
    path = parts.path or "/"
    return (path + (f"?{parts.query}" if parts.query else "")).encode()


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        data = await asyncio.wait_for(reader.read(65536), _IDLE_TIMEOUT_S)
        conn.receive_data(data)


async def _refuse(
    conn: h11.Connection, writer: asyncio.StreamWriter, status: int, text: str
) -> None:
    body = text.encode()
    headers = [
        ("content-type", "text/plain"),
        ("content-length", str(len(body))),
        ("connection", "close"),
    ]
    writer.write(conn.send(h11.Response(status_code=status, headers=headers)))
    writer.write(conn.send(h11.Data(data=body)))
    writer.write(conn.send(h11.EndOfMessage()))
    await writer.drain()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await asyncio.wait_for(src.read(65536), _IDLE_TIMEOUT_S):
            dst.write(data)
            await dst.drain()
    finally:
        if dst.can_write_eof():
            with contextlib.suppress(OSError):
                dst.write_eof()


async def _pipe_both(
    r1: asyncio.StreamReader,
    w1: asyncio.StreamWriter,
    r2: asyncio.StreamReader,
    w2: asyncio.StreamWriter,
) -> None:
    results = await asyncio.gather(_pipe(r1, w2), _pipe(r2, w1), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, OSError | TimeoutError):
            raise result


async def _forward_http(
    conn: h11.Connection,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    request: h11.Request,
    path: bytes,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    """One plain-HTTP request, framed by h11 both ways; the connection closes after it."""
    upstream = h11.Connection(h11.CLIENT)
    hop = {b"proxy-connection", b"proxy-authorization", b"connection", b"keep-alive"}
    headers = [(k, v) for k, v in request.headers if k.lower() not in hop] + [
        (b"connection", b"close")
    ]
    up_writer.write(upstream.send(h11.Request(method=request.method, target=path, headers=headers)))
    while True:
        event = await _next_event(conn, reader)
        if isinstance(event, h11.Data):
            up_writer.write(upstream.send(event))
        elif isinstance(event, h11.EndOfMessage):
            up_writer.write(upstream.send(event))
            break
        else:
            return
    await up_writer.drain()
    while True:
        event = await _next_event(upstream, up_reader)
        if isinstance(event, h11.Response):
            kept = [(k, v) for k, v in event.headers if k.lower() not in hop] + [
                (b"connection", b"close")
            ]
            writer.write(
                conn.send(
                    h11.Response(status_code=event.status_code, headers=kept, reason=event.reason)
                )
            )
        elif isinstance(event, h11.InformationalResponse):
            continue
        elif isinstance(event, h11.Data):
            writer.write(conn.send(event))
            await writer.drain()
        elif isinstance(event, h11.EndOfMessage):
            writer.write(conn.send(event))
            await writer.drain()
            return
        else:
            return
