"""The proxy's I/O: connections (`stream.Stream`, TLS by OpenSSL on the socket), h11 framing.

Per connection: CONNECT head -> host/port checks -> `200` -> TLS with a leaf for that host (SNI
must match) -> a keep-alive loop of inner requests, each checked (Host, path, endpoint, key,
budget, body) and then forwarded over a pooled, verified TLS connection to the vendor, with
the response streamed back chunk by chunk. Every decision is audited before it takes effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import itertools
import logging
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

import h11

from . import bounds, budget, depot, keys, rewrite
from .audit import Audit, Entry
from .ca import Authority
from .errors import Refusal, body
from .paths import PathError, Target, first_match, normalise
from .providers import Auth, ConfigError, Provider
from .settings import Settings
from .stream import Listener, Stream, connect, listen
from .tls import Leaves
from .usage import Meter, UsageChunkStripper

log = logging.getLogger(__name__)

READ_SIZE = 65536
# Never forwarded: hop-by-hop headers, framing we recompute, and every credential header
# (the real key is added by us; anything else the agent sends is refused, see _check_key).
_DROP_REQUEST = frozenset(
    b"connection keep-alive proxy-connection proxy-authorization te trailer transfer-encoding "
    b"upgrade expect host content-length accept-encoding cookie".split()
)
_CREDENTIAL_HEADERS = frozenset(
    b"authorization x-api-key x-goog-api-key api-key proxy-authorization".split()
)
_KEY_QUERY_NAMES = frozenset({"key", "api_key", "apikey", "access_token", "token"})
_HEADER_TOKEN = re.compile(r"[\x21-\x7e]+")  # visible ASCII: no spaces, controls, CR or LF
_DROP_RESPONSE = frozenset(
    b"connection keep-alive proxy-connection transfer-encoding upgrade trailer".split()
)


class _Watch:
    """Notices the agent hanging up (one per connection): cancels a response that is streaming."""

    def __init__(self, writer: Stream) -> None:
        self.task = asyncio.current_task()
        self.streaming = False
        self.gone = False
        self._closed = asyncio.ensure_future(writer.wait_closed())
        self._closed.add_done_callback(self._on_closed)

    def _on_closed(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled():
            future.exception()  # retrieved: a reset connection is an expected way to hang up
        self.gone = True
        if self.streaming and self.task is not None:
            self.task.cancel()

    def stop(self) -> None:
        self._closed.remove_done_callback(self._on_closed)
        self._closed.cancel()


@dataclass(slots=True)
class _Upstream:
    reader: Stream
    writer: Stream
    conn: h11.Connection
    reused: bool = False

    def close(self) -> None:
        self.writer.close()


def _reason(exc: BaseException) -> str:
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")


def _one_line(status: int, message: str) -> tuple[h11.Response, bytes]:
    """A refusal before the provider is known: one line of text, then the connection closes."""
    data = (message + "\n").encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(data)),
        (b"connection", b"close"),
    ]
    return h11.Response(status_code=status, headers=headers), data


class Proxy:
    """Serve `settings` with the given CA and real keys; audit to `audit`."""

    def __init__(
        self,
        settings: Settings,
        authority: Authority,
        real_keys: dict[str, str],
        audit: Audit,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._leaves = Leaves(authority)
        for name, key in real_keys.items():
            # Real keys go into request headers unvalidated by h11 (see _send_upstream).
            if not _HEADER_TOKEN.fullmatch(key):
                raise ConfigError(f"real key for {name}: not a header-safe token (visible ASCII)")
        self._real_keys = real_keys
        self._audit = audit
        self._clock = clock
        self._ledger = budget.Ledger(settings.budget, clock())
        self._pools: dict[str, list[_Upstream]] = {}
        self._upstream_tls: dict[str, ssl.SSLContext] = {}
        self._ids = itertools.count(1)
        self._tuning = settings.tuning
        self._open = 0  # agent connections being served
        # Package registries (docs/registries.md) are served by depot.py, not as providers.
        self._depot = (
            depot.Depot(settings, audit, self._tls_for, depot.read_tokens(settings))
            if settings.registries.registries
            else None
        )

    async def start(self, host: str | None = None, port: int | None = None) -> Listener:
        """Listen (port 0 = any free port; read it from server.sockets)."""
        return await listen(
            self._handle,
            host if host is not None else self.settings.listen_host,
            self.settings.listen_port if port is None else port,
            limit=READ_SIZE,
        )

    @property
    def totals(self) -> budget.Totals:
        """Requests admitted, tokens and cost settled, and what is reserved now."""
        return self._ledger.totals

    @property
    def connections(self) -> int:
        """Agent connections being served now."""
        return self._open

    def close_pools(self) -> None:
        for pool in self._pools.values():
            for upstream in pool:
                upstream.close()
        self._pools.clear()

    # ---- the CONNECT phase ------------------------------------------------------------------

    async def _handle(self, reader: Stream, writer: Stream) -> None:
        self._open += 1
        try:
            host = await self._tunnel(reader, writer)
            if host is not None:
                await self._inner(reader, writer, host)
        except (ConnectionError, TimeoutError, ssl.SSLError, h11.ProtocolError):
            pass  # the peer went away or broke the protocol; nothing more to say to it
        except asyncio.CancelledError:
            pass  # shutting down: the connection is closed below (3.11 logs cancelled handlers)
        except Exception:
            log.exception("connection handler failed; connection closed (fail closed)")
        finally:
            self._open -= 1
            writer.close()

    async def _read_event(
        self, conn: h11.Connection, reader: Stream
    ) -> h11.Event | type[h11.NEED_DATA]:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            conn.receive_data(await reader.read(READ_SIZE))

    async def _read_head(self, conn: h11.Connection, reader: Stream, idle: float) -> h11.Event:
        """Wait up to `idle` for a request to begin, then `header_timeout` for its whole head."""
        event = conn.next_event()
        if event is h11.NEED_DATA:
            async with asyncio.timeout(idle):
                conn.receive_data(await reader.read(READ_SIZE))
            event = conn.next_event()
            if event is h11.NEED_DATA:  # the head came in pieces: it has header_timeout_s
                async with asyncio.timeout(self._tuning.header_timeout_s):
                    event = await self._read_event(conn, reader)
        if isinstance(event, h11.Request):
            # h11 bounds only an incomplete head; a complete one that arrived at once is
            # measured here.
            size = len(event.target) + sum(len(n) + len(v) + 4 for n, v in event.headers)
            if size > self._tuning.max_header_bytes:
                raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
        return event

    def _refuse_connect(
        self,
        writer: Stream,
        conn: h11.Connection,
        host: str,
        status: int,
        rule: str,
        reason: str,
    ) -> None:
        self._audit.write(
            Entry(
                self.settings.session,
                "connect",
                "refuse",
                rule,
                host=host,
                status=status,
                reason=reason,
            )
        )
        response, data = _one_line(status, f"IronCurtain refused: {reason}")
        with contextlib.suppress(h11.LocalProtocolError):
            writer.write(
                conn.send(response) + conn.send(h11.Data(data)) + conn.send(h11.EndOfMessage())
            )

    async def _tunnel(self, reader: Stream, writer: Stream) -> str | None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._tuning.max_header_bytes)
        try:
            event = await self._read_head(conn, reader, self._tuning.header_timeout_s)
        except h11.RemoteProtocolError as exc:
            self._refuse_connect(writer, conn, "", exc.error_status_hint, "http", str(exc))
            return None
        if not isinstance(event, h11.Request):
            return None
        target = event.target.decode("ascii", "replace")
        if self._open > self._tuning.max_connections:
            # Bounded resources: past the limit, connections are refused, not queued.
            limit = self._tuning.max_connections
            self._refuse_connect(
                writer, conn, target, 503, "connections", f"too many connections (limit {limit})"
            )
            return None
        if event.method != b"CONNECT":
            self._refuse_connect(
                writer,
                conn,
                "",
                403,
                "method",
                f"only CONNECT host:443 is served, not {event.method.decode()} "
                "(absolute-form and plain-HTTP proxying are refused)",
            )
            return None
        if any(name in (b"upgrade", b"http2-settings") for name, _ in event.headers):
            self._refuse_connect(
                writer, conn, target, 403, "upgrade", "protocol upgrades are refused"
            )
            return None
        host, sep, port = target.rpartition(":")
        host = host.lower()
        if not sep or not port.isdigit():
            self._refuse_connect(
                writer, conn, target, 400, "target", "CONNECT target must be host:443"
            )
            return None
        if _is_ip(host):
            self._refuse_connect(
                writer,
                conn,
                target,
                403,
                "ip",
                f"IP literal {host} is not allowed; use a host name",
            )
            return None
        if port != "443":
            self._refuse_connect(
                writer, conn, target, 403, "port", f"port {port} is not allowed (only 443)"
            )
            return None
        if host not in self.settings.hosts:
            self._refuse_connect(
                writer, conn, target, 403, "host", f"host {host} is not on the allowlist"
            )
            return None
        async with asyncio.timeout(self._tuning.header_timeout_s):
            end = await self._read_event(conn, reader)
        if not isinstance(end, h11.EndOfMessage):
            self._refuse_connect(writer, conn, target, 400, "http", "CONNECT must not carry a body")
            return None
        if conn.trailing_data[0]:
            # Bytes sent before our 200 (an early ClientHello) are not supported: refuse.
            self._refuse_connect(writer, conn, target, 400, "http", "data sent before the 200")
            return None
        try:
            context = self._leaves.context(host)
        except (OSError, ValueError, ssl.SSLError) as exc:
            log.exception("cannot issue a leaf certificate for %s", host)
            self._refuse_connect(
                writer, conn, target, 500, "tls", f"cannot issue a certificate: {_reason(exc)}"
            )
            return None
        writer.write(
            conn.send(h11.Response(status_code=200, headers=[], reason=b"Connection established"))
        )
        try:
            await writer.start_tls(context, ssl_handshake_timeout=self._tuning.header_timeout_s)
        except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
            self._audit.write(
                Entry(
                    self.settings.session,
                    "connect",
                    "refuse",
                    "tls",
                    host=host,
                    reason=f"TLS handshake failed (SNI must be {host}): {_reason(exc)}",
                )
            )
            return None
        return host

    # ---- requests inside the tunnel ---------------------------------------------------------

    async def _inner(self, reader: Stream, writer: Stream, host: str) -> None:
        if self._depot is not None and host in self.settings.registries.hosts:
            await self._depot.serve(reader, writer, host)  # a package registry: depot.py
            return
        provider = self.settings.provider_for(host)
        assert provider is not None  # _tunnel admitted only allowlisted hosts
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._tuning.max_header_bytes)
        watch = _Watch(writer)
        try:
            await self._serve(reader, writer, conn, provider, host, watch)
        finally:
            watch.stop()

    async def _serve(
        self,
        reader: Stream,
        writer: Stream,
        conn: h11.Connection,
        provider: Provider,
        host: str,
        watch: _Watch,
    ) -> None:
        while True:
            try:
                event = await self._read_head(conn, reader, self._tuning.idle_timeout_s)
            except h11.RemoteProtocolError as exc:
                self._write_refusal(
                    writer,
                    conn,
                    provider,
                    host,
                    "",
                    "",
                    Refusal(exc.error_status_hint, "http", f"malformed request: {exc}"),
                    0.0,
                    "",
                )
                return
            except TimeoutError:
                return
            if not isinstance(event, h11.Request):
                return  # ConnectionClosed
            keep = await self._request(reader, writer, conn, provider, host, event, watch)
            if not keep or conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()

    def _write_refusal(
        self,
        writer: Stream,
        conn: h11.Connection,
        provider: Provider,
        host: str,
        method: str,
        path: str,
        refusal: Refusal,
        started: float,
        rid: str,
    ) -> None:
        self._audit.write(
            Entry(
                self.settings.session,
                "request",
                "refuse",
                refusal.rule,
                host=host,
                provider=provider.name,
                method=method,
                path=path,
                status=refusal.status,
                reason=refusal.reason,
                request_id=rid,
                flag=refusal.flag or "",
                duration_ms=round((time.perf_counter() - started) * 1000, 3) if started else 0.0,
            )
        )
        data = body(provider.error_shape, refusal.status, refusal.reason)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(data)),
            (b"x-ironcurtain-refused", refusal.rule.encode()),
        ]
        if conn.their_state is not h11.DONE:
            headers.append((b"connection", b"close"))
        with contextlib.suppress(h11.LocalProtocolError):
            writer.write(
                conn.send(h11.Response(status_code=refusal.status, headers=headers))
                + conn.send(h11.Data(data))
                + conn.send(h11.EndOfMessage())
            )

    async def _request(
        self,
        reader: Stream,
        writer: Stream,
        conn: h11.Connection,
        provider: Provider,
        host: str,
        request: h11.Request,
        watch: _Watch,
    ) -> bool:
        started = time.perf_counter()
        rid = f"{next(self._ids):x}"
        method = request.method.decode("ascii", "replace")
        path = ""
        try:
            target = self._check_head(request, host)
            path = target.path
            local = next((b for e, b in provider.local if e.matches(method, target)), None)
            if local is not None:
                await self._read_body(reader, writer, conn)
                self._audit.write(
                    Entry(
                        self.settings.session,
                        "request",
                        "local",
                        "local",
                        host=host,
                        provider=provider.name,
                        method=method,
                        path=path,
                        status=200,
                        request_id=rid,
                    )
                )
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(local)),
                ]
                writer.write(
                    conn.send(h11.Response(status_code=200, headers=headers))
                    + conn.send(h11.Data(local))
                    + conn.send(h11.EndOfMessage())
                )
                return True
            endpoint = first_match(provider.endpoints, method, target)
            if endpoint is None:
                raise Refusal(
                    403,
                    "endpoint",
                    f"{method} {path} is not an allowed endpoint for {provider.name}",
                )
            real_key = self._check_key(provider, request)
            exhausted = self._ledger.check(self._clock())  # early: before the body is read
            if exhausted:
                raise Refusal(403, "budget", exhausted)
            data = await self._read_body(reader, writer, conn)
            if provider.strip_server_tools and method == "POST":
                if provider.tool_shape == "gemini":
                    data, _removed = rewrite.strip_gemini_tools(data)
                else:
                    data, _removed = rewrite.strip_server_tools(data, provider.client_tool_types)
            # Admission: the request's bound is reserved and it is counted, in one locked step.
            data, bound = bounds.prepare(provider.meter_for(endpoint), data, path)
            ask = budget.ask(bound, provider.price(bound.model))
            exhausted = self._ledger.admit(ask, self._clock())
            if exhausted:
                raise Refusal(403, "budget", exhausted)
        except Refusal as refusal:
            self._write_refusal(writer, conn, provider, host, method, path, refusal, started, rid)
            return False
        self._audit.write(
            Entry(
                self.settings.session,
                "request",
                "allow",
                str(endpoint),
                host=host,
                provider=provider.name,
                method=method,
                path=path,
                bytes_in=len(data),
                request_id=rid,
                reason=f"reserved {ask.tokens} tokens" if ask.tokens else "",
            )
        )
        return await self._forward(
            writer,
            conn,
            provider,
            host,
            request,
            data,
            real_key,
            path,
            rid,
            started,
            watch,
            ask,
            bound.strip_usage_chunk,
        )

    def _check_head(self, request: h11.Request, host: str) -> Target:
        headers = list(request.headers)  # iterating h11's Headers costs a Python call per item
        names = [name for name, _ in headers]
        if b"transfer-encoding" in names and b"content-length" in names:
            raise Refusal(400, "smuggling", "both Transfer-Encoding and Content-Length are set")
        hosts = [value for name, value in headers if name == b"host"]
        if len(hosts) != 1 or hosts[0].lower() not in (host.encode(), host.encode() + b":443"):
            raise Refusal(403, "host-header", f"the Host header must be {host} (the tunnel's host)")
        if b"upgrade" in names or b"http2-settings" in names:
            raise Refusal(
                403, "upgrade", "protocol upgrades (WebSocket, h2c) are refused; use HTTP/1.1"
            )
        encodings = [v.strip().lower() for n, v in headers if n == b"content-encoding"]
        if any(e not in (b"", b"identity") for e in encodings):
            raise Refusal(
                415, "encoding", "compressed request bodies are refused (they cannot be checked)"
            )
        try:
            target, key_in_query = _parse_target(request.target)
        except PathError as exc:
            raise Refusal(400, "path", f"request path refused: {exc}") from None
        if key_in_query:
            raise Refusal(403, "key", "credentials in the query string are refused")
        for name, value in headers:
            if name == b"content-length" and int(value) > self._tuning.max_body_bytes:
                raise Refusal(413, "size", f"request body over {self._tuning.max_body_bytes} bytes")
        return target

    def _check_key(self, provider: Provider, request: h11.Request) -> str | None:
        """Every credential header must be an accepted one and carry this provider's fake key."""
        present = [(n, v) for n, v in request.headers if n in _CREDENTIAL_HEADERS]
        if provider.auth is Auth.NONE:
            if present:
                raise Refusal(403, "key", f"{provider.name} takes no credentials; refused")
            return None
        accepted = provider.key_headers
        unexpected = sorted({n.decode() for n, _ in present} - set(accepted))
        if unexpected:
            raise Refusal(
                403,
                "key",
                f"unexpected credential header(s) {', '.join(unexpected)}; "
                f"send the session's key in {' or '.join(accepted)}",
            )
        if not present:
            present = [(accepted[0].encode(), b"")]
        for name, value in present:
            presented = keys.presented_key(name.decode(), value.decode("latin-1"))
            verdict = keys.check(presented, provider.name, self.settings.fake_keys)
            if not verdict.ok:
                flag = "foreign_fake_key" if verdict.foreign else None
                raise Refusal(verdict.status, "key", verdict.reason, flag)
        return self._real_keys[provider.name]

    async def _read_body(self, reader: Stream, writer: Stream, conn: h11.Connection) -> bytes:
        if conn.they_are_waiting_for_100_continue:
            writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        chunks: list[bytes] = []
        size = 0
        limit = self._tuning.max_body_bytes
        # One deadline for the whole body; a timer is armed only while waiting for bytes (a small
        # body usually arrives with the head).
        deadline = asyncio.get_running_loop().time() + self._tuning.body_timeout_s
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    async with asyncio.timeout_at(deadline):
                        event = await self._read_event(conn, reader)
                if isinstance(event, h11.Data):
                    size += len(event.data)
                    if size > limit:
                        raise Refusal(413, "size", f"request body over {limit} bytes")
                    chunks.append(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    return b"".join(chunks)
                else:
                    raise Refusal(400, "http", "request body ended early")
        except TimeoutError:
            raise Refusal(408, "timeout", "request body not received in time") from None
        except h11.RemoteProtocolError as exc:
            raise Refusal(400, "http", f"malformed request body: {exc}") from None

    # ---- upstream ---------------------------------------------------------------------------

    def _tls_for(self, host: str) -> ssl.SSLContext:
        ctx = self._upstream_tls.get(host)
        if ctx is None:
            ctx = ssl.create_default_context()
            ctx.set_alpn_protocols(["http/1.1"])
            override = self.settings.upstream.get(host)
            for extra in (self.settings.extra_ca_file, override.ca_file if override else None):
                if extra is not None:
                    ctx.load_verify_locations(cafile=str(extra))
            self._upstream_tls[host] = ctx
        return ctx

    async def _connect(self, host: str) -> _Upstream:
        pool = self._pools.get(host)
        while pool:
            upstream = pool.pop()
            if not upstream.writer.is_closing() and not upstream.reader.at_eof():
                upstream.reused = True
                return upstream
            upstream.close()
        override = self.settings.upstream.get(host)
        address, port = (override.host, override.port) if override else (host, 443)
        async with asyncio.timeout(self._tuning.connect_timeout_s):
            stream = await connect(address, port, self._tls_for(host), host, limit=READ_SIZE)
        return _Upstream(stream, stream, h11.Connection(h11.CLIENT))

    def _release(self, host: str, upstream: _Upstream) -> None:
        conn = upstream.conn
        pool = self._pools.setdefault(host, [])
        if (
            conn.our_state is h11.DONE
            and conn.their_state is h11.DONE
            and len(pool) < self._tuning.pool_size
        ):
            conn.start_next_cycle()
            pool.append(upstream)
        else:
            upstream.close()

    def _upstream_headers(
        self, provider: Provider, host: str, request: h11.Request, data: bytes, real_key: str | None
    ) -> list[tuple[bytes, bytes]]:
        headers = [
            (n, v)
            for n, v in request.headers
            if n not in _DROP_REQUEST and n not in _CREDENTIAL_HEADERS
        ]
        headers.insert(0, (b"host", host.encode()))
        headers.append((b"content-length", b"%d" % len(data)))
        headers.append((b"accept-encoding", b"identity"))  # so usage can be read from the body
        header = provider.auth.header
        if real_key is not None and header is not None:
            value = f"Bearer {real_key}" if provider.auth is Auth.BEARER else real_key
            headers.append((header.encode(), value.encode()))
        return headers

    async def _send_upstream(
        self, host: str, request: h11.Request, headers: list[tuple[bytes, bytes]], data: bytes
    ) -> tuple[_Upstream, h11.Response]:
        """Send and wait for the response head; one retry if a reused connection was stale."""
        for attempt in (0, 1):
            upstream = await self._connect(host)
            conn = upstream.conn
            try:
                upstream.writer.write(
                    conn.send(
                        # Every part was validated already (h11 parsed the agent's request;
                        # our own headers and the real keys were checked at start), so h11's
                        # per-header validation is skipped here: it was a hot spot.
                        h11.Request(
                            method=request.method,
                            target=request.target,
                            headers=headers,
                            _parsed=True,
                        )
                    )
                    + conn.send(h11.Data(data))
                    + conn.send(h11.EndOfMessage())
                )
                async with asyncio.timeout(self._tuning.response_timeout_s):
                    while True:
                        event = await self._read_event(conn, upstream.reader)
                        if isinstance(event, h11.Response):
                            return upstream, event
                        if not isinstance(event, h11.InformationalResponse):
                            raise ConnectionResetError("upstream closed before responding")
            except (ConnectionError, h11.RemoteProtocolError):
                upstream.close()
                if not upstream.reused or attempt:
                    raise
            except BaseException:
                upstream.close()
                raise
        raise AssertionError("unreachable")

    async def _forward(
        self,
        writer: Stream,
        conn: h11.Connection,
        provider: Provider,
        host: str,
        request: h11.Request,
        data: bytes,
        real_key: str | None,
        path: str,
        rid: str,
        started: float,
        watch: _Watch,
        ask: budget.Ask,
        strip_usage: bool,
    ) -> bool:
        method = request.method.decode()
        headers = self._upstream_headers(provider, host, request, data, real_key)
        try:
            upstream, response = await self._send_upstream(host, request, headers, data)
        except (OSError, ssl.SSLError, h11.ProtocolError) as exc:
            refusal = (  # TimeoutError is an OSError: silence is 504, everything else 502
                Refusal(504, "upstream", f"{host} did not answer in time")
                if isinstance(exc, TimeoutError)
                else Refusal(502, "upstream", f"{host} unreachable: {_reason(exc)}")
            )
            charged = budget.unanswered(ask, isinstance(exc, TimeoutError))
            self._ledger.settle(ask, charged, provider.price(ask.model))
            self._write_refusal(writer, conn, provider, host, method, path, refusal, started, rid)
            return False
        content_type = ""
        out_headers = []
        for name, value in response.headers:
            if name in _DROP_RESPONSE:
                continue
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length" and strip_usage:
                continue  # the agent's copy loses a chunk: h11 frames it chunked instead
            out_headers.append((name, value))
        meter = Meter(content_type)
        stripper = UsageChunkStripper() if strip_usage and response.status_code == 200 else None
        sent = 0
        ok = False
        # Bytes for the agent are gathered while upstream events are at hand and written once
        # before waiting for more: one send per upstream read, so nothing is held back.
        out = [
            conn.send(
                h11.Response(
                    status_code=response.status_code,
                    headers=out_headers,
                    reason=response.reason,
                    _parsed=True,  # the vendor's head, validated by h11 when it was parsed
                )
            )
        ]
        uconn = upstream.conn
        ureader = upstream.reader
        timeout = self._tuning.response_timeout_s
        watch.streaming = True
        try:
            if watch.gone:
                raise asyncio.CancelledError
            while True:
                event = uconn.next_event()
                if event is h11.NEED_DATA:
                    writer.write(b"".join(out))
                    out.clear()
                    await writer.drain()
                    async with asyncio.timeout(timeout):
                        uconn.receive_data(await ureader.read(READ_SIZE))
                elif isinstance(event, h11.Data):
                    chunk = event.data
                    meter.feed(chunk)
                    if stripper is not None:
                        chunk = stripper.feed(chunk)
                    if chunk:
                        out.append(conn.send(h11.Data(chunk)))
                        sent += len(chunk)
                elif isinstance(event, h11.EndOfMessage):
                    rest = stripper.finish() if stripper is not None else b""
                    if rest:
                        out.append(conn.send(h11.Data(rest)))
                        sent += len(rest)
                    out.append(conn.send(h11.EndOfMessage()))
                    writer.write(b"".join(out))
                    ok = True
                    break
                else:
                    break  # upstream closed mid-body
        except asyncio.CancelledError:
            if not watch.gone:
                raise
            if watch.task is not None and watch.task.cancelling():
                watch.task.uncancel()
        except (TimeoutError, OSError, ssl.SSLError, h11.ProtocolError):
            pass
        finally:
            watch.streaming = False
            if ok:
                self._release(host, upstream)
            else:
                upstream.close()  # cancels the vendor-side request
        reading = meter.finish()
        usage, estimated = budget.charge(ask, reading, ok, response.status_code)
        price = provider.price(usage.model)
        self._ledger.settle(ask, usage, price)
        self._audit.write(
            Entry(
                self.settings.session,
                "response",
                "done" if ok else ("cancelled" if watch.gone else "error"),
                "upstream",
                host=host,
                provider=provider.name,
                method=method,
                path=path,
                status=response.status_code,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost_usd=round(budget.cost(usage, price), 6),
                bytes_in=len(data),
                bytes_out=sent,
                request_id=rid,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
                flag="usage_estimated" if estimated else "",
            )
        )
        return ok


@functools.lru_cache(maxsize=512)
def _parse_target(raw: bytes) -> tuple[Target, bool]:
    """The normalised target, and whether its query names a credential.

    Pure, so cached: an agent sends the same few targets again and again. A PathError is
    raised again each time (lru_cache keeps only results).
    """
    target = normalise(raw)
    query = raw.partition(b"?")[2].decode("ascii", "replace")
    pairs = parse_qsl(query, keep_blank_values=True)
    return target, any(k.lower() in _KEY_QUERY_NAMES for k, _ in pairs)


def _is_ip(host: str) -> bool:
    candidate = host.strip("[]")
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        # Also refuse forms some resolvers read as IPv4 (e.g. "2130706433", "0x7f.1").
        return all(part.isdigit() or part.startswith("0x") for part in candidate.split(".") if part)
    return True
