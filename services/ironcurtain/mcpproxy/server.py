"""The proxy's HTTP/1.1 server: httptools (llhttp, C) frames each request, `McpHttp.respond`
answers it, and the whole response goes out in one write (a streamed one, SSE, chunked).

One write matters on these shared cores: a response written as head, then body (as ASGI servers
do) wakes the client twice, and the client may take the core between the two. Requests on one
connection are answered in order (pipelining included); a malformed request is answered 400 and
the connection closed; a body over the limit 413 and closed. A client that goes away mid-call
does not cancel the call (the gate has audited it and forwards it; the answer is dropped), as
with uvicorn; nor does it end a call's SSE answer early (its events are dropped), while a GET
stream, which only follows events, ends with its connection.

Slow or idle clients cannot hold the server: at most `max_connections` at once (more are
answered 503 and closed); a new connection that sends nothing is closed after `header_s`, a
kept-alive one waiting for its next request after `idle_s`; from a request's first byte its
head must be complete within `header_s` and no larger than `MAX_HEAD_BYTES`, and from its head
the body within `body_s` (408 / 431 and closed).
Each deadline is set once, when its phase begins: bytes trickling in do not extend it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from email.utils import formatdate
from http import HTTPStatus

import anyio
import httptools

from .http import MAX_BODY_BYTES, Reply, Responder

logger = logging.getLogger(__name__)

IDLE_S = 120.0  # a connection with no request begun for this long is closed
HEADER_S = 10.0  # from a request's first byte to the end of its head
BODY_S = 30.0  # from the end of a request's head to the end of its body (4 MiB at most)
MAX_CONNECTIONS = 128  # the agent's client keeps a few; a benchmark 16
MAX_HEADERS = 100
MAX_HEAD_BYTES = 64 * 1024  # request line and headers
MAX_QUEUED = 8  # pipelined requests waiting on one connection before it stops reading
# A GET stream's events waiting in the socket's buffer for a client that does not read: past
# this, further events are dropped (they are advisory), so a slow reader costs bounded memory.
MAX_FOLLOW_BUFFER = 1024 * 1024

_IDLE, _HEAD, _BODY, _QUEUED = "idle", "head", "body", "queued"  # what a connection waits for


class _Clock:
    """The Date header, formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def date(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode()
        return self._value


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def encode(reply: Reply, keep_alive: bool, date: bytes, *, head: bool = False) -> bytes:
    """Status line, headers and body as one buffer (no body in answer to HEAD); a streamed
    reply's head only, its body to follow chunked."""
    lines = [b"HTTP/1.1 %d %s" % (reply.status, _reason(reply.status)), b"date: " + date]
    lines += [name + b": " + value for name, value in reply.headers]
    if reply.stream is not None:
        lines.append(b"transfer-encoding: chunked")
    else:
        lines.append(b"content-length: %d" % len(reply.body))
    if not keep_alive:
        lines.append(b"connection: close")
    body = b"" if head or reply.stream is not None else reply.body
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class _Request:
    __slots__ = ("body", "headers", "keep_alive", "method", "path", "too_large")

    def __init__(self) -> None:
        self.method = ""
        self.path = ""
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.too_large = False
        self.keep_alive = True


class HttpConnection(asyncio.Protocol):
    def __init__(
        self,
        app: Responder,
        connections: set[HttpConnection],
        clock: _Clock,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        idle_s: float = IDLE_S,
        header_s: float = HEADER_S,
        body_s: float = BODY_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.app = app
        self.connections = connections
        self.clock = clock
        self.max_body_bytes = max_body_bytes
        self.idle_s = idle_s
        self.header_s = header_s
        self.body_s = body_s
        self.max_connections = max_connections
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.current = _Request()
        self.size = 0
        self.head_bytes = 0
        self.queue: deque[_Request] = deque()
        self.worker: asyncio.Task[None] | None = None
        self.waiting = _IDLE
        self.deadline: asyncio.TimerHandle | None = None
        self.closing = False
        self.following: anyio.CancelScope | None = None  # a GET stream, ended by a close

    # -- transport events --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if len(self.connections) >= self.max_connections:
            logger.warning("refusing a connection: %d already open", len(self.connections))
            self._refuse(503, b"Too many connections: try again later")
            return
        self.connections.add(self)
        # A new connection that sends nothing holds a slot: it gets a head's time, not a
        # kept-alive connection's idle time.
        self._wait(_IDLE, min(self.idle_s, self.header_s))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.connections.discard(self)
        self._cancel_deadline()
        if self.following is not None:
            self.following.cancel()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, b"Upgrade is not supported")
            return
        except httptools.HttpParserError:
            self._refuse(400, b"Malformed HTTP request")
            return
        if self.waiting == _HEAD:
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD_BYTES:
                self._refuse(431, b"Request head over %d bytes" % MAX_HEAD_BYTES)

    def close(self) -> None:
        self.closing = True
        self.connections.discard(self)
        self._cancel_deadline()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # -- parser callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.current = _Request()
        self.size = 0
        self.head_bytes = 0
        self._wait(_HEAD, self.header_s)  # from the first byte, whatever trickles in after it

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self.current.headers
        if len(headers) >= MAX_HEADERS:
            raise httptools.HttpParserError("too many headers")
        headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        request = self.current
        request.method = self.parser.get_method().decode("ascii", "replace")
        request.path = httptools.parse_url(self.url).path.decode("latin-1")
        request.keep_alive = self.parser.should_keep_alive()
        self._wait(_BODY, self.body_s)
        for name, value in request.headers:
            if name == "expect" and value.lower() == "100-continue" and self.transport:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self.current.too_large:
            return
        self.size += len(body)
        if self.size > self.max_body_bytes:
            self.current.too_large = True
            self.current.body = []
        else:
            self.current.body.append(body)

    def on_message_complete(self) -> None:
        self._wait(_QUEUED, None)  # answering may take long (an escalation): no deadline
        self.queue.append(self.current)
        if len(self.queue) >= MAX_QUEUED and self.transport is not None:
            self.transport.pause_reading()
        if self.worker is None or self.worker.done():
            self.worker = asyncio.get_running_loop().create_task(self._serve_queue())

    # -- answering ---------------------------------------------------------------------------

    async def _serve_queue(self) -> None:
        while self.queue and not self.closing:
            request = self.queue.popleft()
            if self.transport is not None and len(self.queue) < MAX_QUEUED:
                self.transport.resume_reading()
            body = None if request.too_large else b"".join(request.body)
            keep_alive = request.keep_alive and not request.too_large
            reply = await self.app.respond(request.method, request.path, request.headers, body)
            if self.closing or self.transport is None:
                if reply.follow:  # run, cancelled at once: what the stream holds is let go
                    await self._stream(reply)
                return  # the client went away; the call itself went through the gate
            head = request.method == "HEAD"
            self.transport.write(encode(reply, keep_alive, self.clock.date(), head=head))
            if reply.stream is not None and not head:
                await self._stream(reply)
                if self.closing or self.transport is None:
                    return
                self.transport.write(b"0\r\n\r\n")
            if not keep_alive:
                self.close()
                return
        if self.waiting == _QUEUED and not self.closing:  # not while a next request arrives
            self._wait(_IDLE, self.idle_s)

    async def _stream(self, reply: Reply) -> None:
        """A streamed body, each chunk written as it comes (to a closed connection: dropped)."""
        assert reply.stream is not None

        async def write(chunk: bytes) -> None:
            transport = self.transport
            if not chunk or self.closing or transport is None:
                return
            if reply.follow and transport.get_write_buffer_size() > MAX_FOLLOW_BUFFER:
                return
            transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))

        if not reply.follow:
            await reply.stream(write)
            return
        with anyio.CancelScope() as scope:
            self.following = scope
            if self.closing:
                scope.cancel()
            try:
                await reply.stream(write)
            finally:
                self.following = None

    def _refuse(self, status: int, text: bytes) -> None:
        reply = Reply(status, text, ((b"content-type", b"text/plain; charset=utf-8"),))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode(reply, False, self.clock.date()))
        self.close()

    # -- deadlines ---------------------------------------------------------------------------

    def _wait(self, what: str, seconds: float | None) -> None:
        self._cancel_deadline()
        self.waiting = what
        if seconds is not None and not self.closing:
            self.deadline = asyncio.get_running_loop().call_later(seconds, self._expired)

    def _cancel_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _expired(self) -> None:
        self.deadline = None
        if self.waiting == _IDLE:
            self.close()
        elif self.waiting == _HEAD:
            self._refuse(408, b"Request head not complete within %g s" % self.header_s)
        elif self.waiting == _BODY:
            self._refuse(408, b"Request body not complete within %g s" % self.body_s)


class HttpServer:
    """Serves `app` on an already bound socket until `close()`."""

    def __init__(
        self,
        app: Responder,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        idle_s: float = IDLE_S,
        header_s: float = HEADER_S,
        body_s: float = BODY_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.idle_s = idle_s
        self.header_s = header_s
        self.body_s = body_s
        self.max_connections = max_connections
        self.connections: set[HttpConnection] = set()
        self._clock = _Clock()
        self._server: asyncio.Server | None = None

    def _connection(self) -> HttpConnection:
        return HttpConnection(
            self.app,
            self.connections,
            self._clock,
            max_body_bytes=self.max_body_bytes,
            idle_s=self.idle_s,
            header_s=self.header_s,
            body_s=self.body_s,
            max_connections=self.max_connections,
        )

    async def start(self, sock: object) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._connection, sock=sock)  # type: ignore[call-overload]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()
