"""The proxy's I/O: connections (`stream.Stream`, TLS by OpenSSL on the socket), h11 framing.

Per connection: CONNECT head -> host/port checks -> `200` -> TLS with a leaf for that host (SNI
must match) -> a keep-alive loop of inner requests, each a `flow.Flow` run through the pure
checks of checks.py (head, endpoint and query, headers, key; the budget here; body), then sent
as the checked `flow.Outgoing` over a pooled, verified TLS connection to the vendor, with the
response streamed back chunk by chunk. Every decision is audited before it takes effect;
refusals are bounded and rate-limited (throttle.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import h11

from . import bounds, budget, checks, depot, driver, oauth
from .audit import Audit, Entry
from .ca import Authority
from .errors import Refusal, body, bounded, http_error
from .flow import Flow, Outgoing, outgoing
from .headers import upgrade_refused
from .providers import Auth, ConfigError, Provider
from .settings import Settings
from .stream import Listener, Stream, connect, listen
from .throttle import Throttle, Verdict
from .tls import Leaves
from .usage import Meter, UsageChunkStripper

log = logging.getLogger(__name__)

READ_SIZE = driver.READ_SIZE
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


def _upstream_error(host: str, exc: BaseException) -> Refusal:
    """502/504 naming the vendor's host only: never the address we dialled or the OS's text."""
    if isinstance(exc, TimeoutError):  # an OSError too: silence is 504, everything else 502
        return Refusal(504, "upstream", f"{host} did not answer in time")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Refusal(502, "upstream", f"{host} unreachable: its certificate is not trusted")
    return Refusal(502, "upstream", f"{host} unreachable ({type(exc).__name__})")


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
        # Subscriptions: the real access token is asked of the host (oauth.py), per provider.
        self._oauth = {
            name: oauth.TokenSource(path) for name, path in settings.oauth_sockets.items()
        }
        self._audit = audit
        self._in_flight = 0  # requests being handled: 1 = nobody an on-loop audit sync stalls
        self._clock = clock
        self._ledger = budget.Ledger(settings.budget, clock())
        self._admission = {p.name: checks.Admission.of(p) for p in settings.providers.values()}
        self._throttle = Throttle(
            clock, settings.tuning.refusals_per_s, settings.tuning.refusals_burst
        )
        # Clients that hang up before TLS (`cancelled`) have a bucket of their own: a flood of
        # cheap hang-ups must not push real refusals out of the log (and out of the summary).
        self._hangups = Throttle(
            clock, settings.tuning.refusals_per_s, settings.tuning.refusals_burst
        )
        self._pools: dict[str, list[_Upstream]] = {}
        self._upstream_tls: dict[str, ssl.SSLContext] = {}
        self._ids = itertools.count(1)
        self._tuning = settings.tuning
        self._open = 0  # agent connections being served
        # Package registries (docs/registries.md) are served by depot.py, not as providers.
        self._depot = (
            depot.Depot(
                settings,
                audit,
                self._tls_for,
                depot.read_tokens(settings),
                audit_refusal=self._audit_refusal,
            )
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

    async def _read_head(self, conn: h11.Connection, reader: Stream, idle: float) -> h11.Event:
        t = self._tuning
        return await driver.read_head(conn, reader, idle, t.header_timeout_s, t.max_header_bytes)

    def _refuse_connect(
        self,
        writer: Stream,
        conn: h11.Connection,
        host: str,
        status: int,
        rule: str,
        reason: str,
    ) -> None:
        refusal = Refusal(status, rule, reason)  # bounds the reason
        entry = Entry(
            self.settings.session,
            "connect",
            "refuse",
            rule,
            host=bounded(host),
            status=status,
            reason=refusal.reason,
        )
        if not self._audit_refusal(entry):
            return  # over the rate limit: closed unanswered
        response, data = _one_line(status, f"IronCurtain refused: {refusal.reason}")
        with contextlib.suppress(h11.LocalProtocolError):
            writer.write(
                conn.send(response) + conn.send(h11.Data(data)) + conn.send(h11.EndOfMessage())
            )

    def _audit_refusal(self, entry: Entry) -> bool:
        """Write a refusal's line unless over the rate limit (throttle.py); False = close now."""
        hangup = entry.decision == "cancelled"
        throttle = self._hangups if hangup else self._throttle
        verdict, dropped = throttle.admit()
        if dropped:
            self._write_summary(dropped, hangup)
        if verdict is Verdict.WRITE:
            self._audit.write(entry)
            return True
        if verdict is Verdict.LIMIT:
            what = "hang-ups" if hangup else "refusals"
            self._audit.write(
                Entry(
                    self.settings.session,
                    entry.event,
                    "limit",
                    "rate",
                    reason=f"over {throttle.rate:g} {what}/s: further ones are closed "
                    "unanswered and counted, not written",
                )
            )
        return False

    def _write_summary(self, dropped: int, hangup: bool = False) -> None:
        what = "hang-up(s) before TLS" if hangup else "refused connection(s)"
        self._audit.write(
            Entry(
                self.settings.session,
                "hangups" if hangup else "refusals",
                "limit",
                "rate",
                reason=f"{dropped} {what} closed unanswered, not written",
                count=dropped,
            )
        )

    def flush_refusals(self) -> None:
        """At shutdown: the count of refusals the rate limit kept out of the log."""
        for throttle, hangup in ((self._throttle, False), (self._hangups, True)):
            dropped = throttle.flush()
            if dropped:
                self._write_summary(dropped, hangup)

    async def _tunnel(self, reader: Stream, writer: Stream) -> str | None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._tuning.max_header_bytes)
        try:
            event = await self._read_head(conn, reader, self._tuning.header_timeout_s)
        except h11.RemoteProtocolError as exc:
            refusal = http_error(exc)
            self._refuse_connect(writer, conn, "", refusal.status, "http", refusal.reason)
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
        upgrade = upgrade_refused(name for name, _ in event.headers)
        if upgrade is not None:
            self._refuse_connect(writer, conn, target, 403, "upgrade", upgrade.reason)
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
                "IP literals are not allowed; use a host name",
            )
            return None
        if port != "443":
            shown = port if len(port) <= 5 else "(a long number)"
            self._refuse_connect(
                writer, conn, target, 403, "port", f"port {shown} is not allowed (only 443)"
            )
            return None
        if host not in self.settings.hosts:
            self._refuse_connect(writer, conn, target, 403, "host", "host not on the allowlist")
            return None
        async with asyncio.timeout(self._tuning.header_timeout_s):
            end = await driver.next_event(conn, reader)
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
                writer,
                conn,
                target,
                500,
                "tls",
                f"cannot issue a certificate ({type(exc).__name__})",
            )
            return None
        writer.write(
            conn.send(h11.Response(status_code=200, headers=[], reason=b"Connection established"))
        )
        try:
            await writer.start_tls(context, ssl_handshake_timeout=self._tuning.header_timeout_s)
        except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
            decision, reason = _handshake_failure(exc)
            self._audit_refusal(
                Entry(self.settings.session, "connect", decision, "tls", host=host, reason=reason)
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
                self._write_refusal(writer, conn, provider, host, http_error(exc))
                return
            except TimeoutError:
                return
            if not isinstance(event, h11.Request):
                return  # ConnectionClosed
            self._in_flight += 1
            try:
                keep = await self._request(reader, writer, conn, provider, host, event, watch)
            finally:
                self._in_flight -= 1
            if not keep or conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()

    def _write_refusal(
        self,
        writer: Stream,
        conn: h11.Connection,
        provider: Provider,
        host: str,
        refusal: Refusal,
        flow: Flow | None = None,  # None: refused before a request was parsed
    ) -> None:
        entry = Entry(
            self.settings.session,
            "request",
            "refuse",
            refusal.rule,
            host=host,
            provider=provider.name,
            method=bounded(flow.method, 16) if flow else "",
            path=bounded(flow.path) if flow else "",
            status=refusal.status,
            reason=refusal.reason,
            request_id=flow.rid if flow else "",
            flag=refusal.flag or "",
            duration_ms=round((time.perf_counter() - flow.started) * 1000, 3) if flow else 0.0,
        )
        if not self._audit_refusal(entry):
            return  # over the rate limit: closed unanswered
        data = body(provider.error_shape, refusal.status, refusal.reason)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(data)),
            (b"x-ironcurtain-refused", refusal.rule.encode()),
        ]
        if conn.their_state is not h11.DONE:
            headers.append((b"connection", b"close"))
        with contextlib.suppress(h11.LocalProtocolError):
            head = bool(flow and flow.head)
            writer.write(driver.answer(conn, refusal.status, headers, data, head))

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
        """One request: the checks in order (checks.py), then a local answer or the vendor's."""
        flow = Flow(
            request,
            provider,
            host,
            f"{next(self._ids):x}",
            time.perf_counter(),
            request.method.decode("ascii", "replace"),
        )
        admission = self._admission[provider.name]
        try:
            refusal = checks.head(flow, self._tuning.max_body_bytes)
            if refusal is None:
                answer = checks.local(flow)
                if answer is not None:
                    await self._read_body(reader, writer, conn)
                    self._answer_local(writer, conn, flow, answer)
                    return True
            source = self._oauth.get(provider.name)
            refusal = (
                refusal
                or checks.endpoint(flow)
                or checks.header_allowlist(flow, admission)
                or checks.key(flow, self.settings.fake_keys, self._real_keys, source is not None)
                or self._check_budget()  # early: before the body is read
            )
            if refusal is None and source is not None:
                flow.real_key = await source.current()  # a Refusal (503) if the host is silent
            if refusal is None:
                refusal = checks.body(flow, await self._read_body(reader, writer, conn), admission)
            if refusal is None:
                refusal = self._admit_budget(flow)
        except Refusal as raised:  # from reading the body (size, time, framing)
            refusal = raised
        if refusal is not None:
            self._write_refusal(writer, conn, provider, host, refusal, flow)
            return False
        await self._audit.write_durably(
            Entry(
                self.settings.session,
                "request",
                "allow",
                str(flow.endpoint),
                host=host,
                provider=provider.name,
                method=flow.method,
                path=flow.path,
                bytes_in=len(flow.body),
                request_id=flow.rid,
                reason=f"reserved {flow.ask.tokens} tokens" if flow.ask.tokens else "",
            ),
            alone=self._in_flight == 1,
        )
        return await self._forward(writer, conn, flow, watch)

    def _check_budget(self) -> Refusal | None:
        exhausted = self._ledger.check(self._clock())
        return Refusal(403, "budget", exhausted) if exhausted else None

    def _admit_budget(self, flow: Flow) -> Refusal | None:
        """Admission: the checked body's bound is reserved and counted, in one locked step."""
        assert flow.endpoint is not None  # checks.endpoint() passed
        provider = flow.provider
        # The document shapes.admit_parsed checked and serialised is read, not parsed again.
        spec = provider.meter_for(flow.endpoint)
        flow.body, bound = bounds.prepare(spec, flow.body, flow.path, flow.doc)
        flow.doc = None  # bounds may have changed it; `body` is what goes out
        flow.ask = budget.ask(bound, provider.price(bound.model))
        flow.strip_usage = bound.strip_usage_chunk
        exhausted = self._ledger.admit(flow.ask, self._clock())
        return Refusal(403, "budget", exhausted) if exhausted else None

    def _answer_local(
        self, writer: Stream, conn: h11.Connection, flow: Flow, answer: bytes
    ) -> None:
        self._audit.write(
            Entry(
                self.settings.session,
                "request",
                "local",
                "local",
                host=flow.host,
                provider=flow.provider.name,
                method=flow.method,
                path=flow.path,
                status=200,
                request_id=flow.rid,
            )
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(answer)),
        ]
        writer.write(driver.answer(conn, 200, headers, answer, flow.head))

    async def _read_body(self, reader: Stream, writer: Stream, conn: h11.Connection) -> bytes:
        t = self._tuning
        return await driver.read_body(conn, reader, writer, t.max_body_bytes, t.body_timeout_s)

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

    async def _send_upstream(self, host: str, out: Outgoing) -> tuple[_Upstream, h11.Response]:
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
                            method=out.method,
                            target=out.target,
                            headers=out.headers,
                            _parsed=True,
                        )
                    )
                    + conn.send(h11.Data(out.body))
                    + conn.send(h11.EndOfMessage())
                )
                async with asyncio.timeout(self._tuning.response_timeout_s):
                    while True:
                        event = await driver.next_event(conn, upstream.reader)
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

    def _outgoing(self, flow: Flow, oauth_session: bool) -> Outgoing:
        provider = flow.provider
        if oauth_session and provider.oauth is not None:
            return outgoing(flow, "authorization", True, provider.oauth.beta.encode())
        return outgoing(flow, provider.auth.header, provider.auth is Auth.BEARER)

    async def _discard(self, host: str, upstream: _Upstream) -> None:
        """Read a (small) refused answer to its end, so the connection can be reused."""
        try:
            async with asyncio.timeout(self._tuning.response_timeout_s):
                while True:
                    event = await driver.next_event(upstream.conn, upstream.reader)
                    if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                        break
        except (TimeoutError, OSError, ssl.SSLError, h11.ProtocolError):
            upstream.close()
            return
        self._release(host, upstream)

    def _audit_oauth_retry(self, flow: Flow) -> None:
        self._audit.write(
            Entry(
                self.settings.session,
                "request",
                "retry",
                "oauth",
                host=flow.host,
                provider=flow.provider.name,
                method=flow.method,
                path=flow.path,
                status=401,
                request_id=flow.rid,
                reason="the vendor refused the access token; sent again with a refreshed one",
            )
        )

    async def _forward(
        self, writer: Stream, conn: h11.Connection, flow: Flow, watch: _Watch
    ) -> bool:
        provider, host = flow.provider, flow.host
        source = self._oauth.get(provider.name)
        out = self._outgoing(flow, source is not None)
        method, path, rid, started, data = flow.method, flow.path, flow.rid, flow.started, out.body
        ask, strip_usage = flow.ask, flow.strip_usage
        try:
            upstream, response = await self._send_upstream(host, out)
            if response.status_code == 401 and source is not None and flow.real_key:
                # The access token was refused (expired early, revoked, rotated): the host
                # refreshes once and the request is sent again; the agent sees one answer.
                await self._discard(host, upstream)
                flow.real_key = await source.refused(flow.real_key)
                self._audit_oauth_retry(flow)
                upstream, response = await self._send_upstream(host, self._outgoing(flow, True))
        except Refusal as refusal:  # the host had no token to give
            self._ledger.settle(ask, budget.unanswered(ask, False), provider.price(ask.model))
            self._write_refusal(writer, conn, provider, host, refusal, flow)
            return False
        except (OSError, ssl.SSLError, h11.ProtocolError) as exc:
            charged = budget.unanswered(ask, isinstance(exc, TimeoutError))
            self._ledger.settle(ask, charged, provider.price(ask.model))
            self._write_refusal(writer, conn, provider, host, _upstream_error(host, exc), flow)
            return False
        content_type = ""
        out_headers = []
        # raw_items() and lower(): the names h11 iterates, without a Python call per item
        for raw_name, value in response.headers.raw_items():
            name = raw_name.lower()
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
        pending = [
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
                    writer.write(b"".join(pending))
                    pending.clear()
                    await writer.drain()
                    async with asyncio.timeout(timeout):
                        uconn.receive_data(await ureader.read(READ_SIZE))
                elif isinstance(event, h11.Data):
                    chunk = event.data
                    meter.feed(chunk)
                    if stripper is not None:
                        chunk = stripper.feed(chunk)
                    if chunk:
                        pending.append(conn.send(h11.Data(chunk)))
                        sent += len(chunk)
                elif isinstance(event, h11.EndOfMessage):
                    rest = stripper.finish() if stripper is not None else b""
                    if rest:
                        pending.append(conn.send(h11.Data(rest)))
                        sent += len(rest)
                    pending.append(conn.send(h11.EndOfMessage()))
                    writer.write(b"".join(pending))
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
                model=bounded(usage.model or "", 100),
                priced_as=price.model,
                bytes_in=len(data),
                bytes_out=sent,
                request_id=rid,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
                flag="usage_estimated" if estimated else "",
            )
        )
        return ok


def _is_ip(host: str) -> bool:
    candidate = host.strip("[]")
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        # Also refuse forms some resolvers read as IPv4 (e.g. "2130706433", "0x7f.1").
        return all(part.isdigit() or part.startswith("0x") for part in candidate.split(".") if part)
    return True


def _handshake_failure(exc: BaseException) -> tuple[str, str]:
    """(decision, reason) for a TLS handshake that did not complete.

    A client that hangs up after our 200 (the start-up probe does, by design) was refused
    nothing: it is `cancelled`, so the session's refusal count holds only what the door refused.
    """
    if isinstance(exc, TimeoutError | ConnectionAbortedError):  # asyncio's handshake deadline
        return "refuse", "no TLS handshake before the deadline"
    if isinstance(exc, ssl.SSLEOFError | ConnectionError):
        return "cancelled", "the client closed the tunnel before the TLS handshake ended"
    text = f"TLS handshake failed (SNI must be the CONNECT host): {exc}"
    return "refuse", bounded(text, 300)
