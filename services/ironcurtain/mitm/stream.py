"""Sockets read and written directly, with TLS done by OpenSSL on the socket itself.

asyncio's TLS transport runs TLS in Python over memory BIOs: each record is copied into a BIO,
decrypted, copied out again, and passed through several layers of Python calls each way. With
two TLS legs per proxied request that was most of the proxy's CPU. Here a non-blocking
`ssl.SSLSocket` reads and writes the kernel socket in C, and the event loop only says when the
socket is ready. A `Stream` offers the part of asyncio's StreamReader/StreamWriter API that the
server uses, with the same semantics (eager reads up to a limit, buffered writes, `drain`,
`start_tls`, a close that flushes first), so one object serves as both reader and writer.

A TLS peer's end of stream (close_notify or EOF) counts as the connection going away, as it does
in asyncio's TLS transport: `wait_closed` then returns, which is how a hang-up is noticed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

_RECORD = 16384  # the largest TLS record's plaintext: a shorter read means the socket is drained
_LOW_WATER = 16384  # drain() returns once no more than this is waiting to be sent
_HIGH_WATER = 65536
_CLOSE_FLUSH_S = 30.0  # how long a closing stream may wait to send what is still queued
_LINGER_S = 10.0  # how long a closed TLS server stream reads on, waiting for the peer to close
_ACCEPT_PAUSE_S = 1.0  # out of file descriptors: stop accepting for this long (as asyncio does)
_ACCEPT_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class Stream:
    """One connected socket, plain or (after `start_tls`) TLS; reader and writer in one."""

    def __init__(self, sock: socket.socket, *, server_side: bool, limit: int = 65536) -> None:
        self._loop = asyncio.get_running_loop()
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock: socket.socket = sock
        self._fd = sock.fileno()
        self._server_side = server_side
        self._limit = limit
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._eof = False
        self._error: OSError | None = None
        self._reader: asyncio.Future[None] | None = None
        self._reading = False
        self._unsent: collections.deque[bytes] = collections.deque()
        self._unsent_size = 0
        self._drainer: asyncio.Future[None] | None = None
        self._closing = False
        self._tls = False  # a TLS session is established
        self._gone = False  # the socket is closed (by us or because the peer went away)
        self._closed_waiters: list[asyncio.Future[None]] = []
        self._close_timer: asyncio.TimerHandle | None = None
        self._resume_reading()

    # ---- reading ----------------------------------------------------------------------------

    def _resume_reading(self) -> None:
        if not self._reading and not self._gone and not self._eof:
            self._reading = True
            self._loop.add_reader(self._fd, self._read_ready)

    def _pause_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def _read_ready(self) -> None:
        try:
            while True:
                data = self._sock.recv(self._limit)
                if not data:
                    self._eof = True
                    break
                self._chunks.append(data)
                self._size += len(data)
                if self._size >= self._limit:
                    self._pause_reading()
                    break
                if len(data) < _RECORD:
                    break
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
            pass
        except OSError as exc:  # ssl.SSLError included; SSLWantWriteError too (renegotiation)
            self._lost(exc)
            return
        self._wake_reader()
        if self._eof:
            if isinstance(self._sock, ssl.SSLSocket):
                self._lost(None)  # the end of a TLS stream ends the connection (as in asyncio)
            else:
                self._pause_reading()  # plain TCP: half-closed, we may still answer

    def _wake_reader(self) -> None:
        waiter = self._reader
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes (one received chunk at most); b"" at end of stream."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._eof or self._gone:
                return b""
            self._reader = self._loop.create_future()
            try:
                await self._reader
            finally:
                self._reader = None
        data = self._chunks.popleft()
        if 0 <= n < len(data):
            self._chunks.appendleft(data[n:])
            data = data[:n]
        self._size -= len(data)
        if not self._reading and self._size < self._limit:
            self._resume_reading()
        return data

    def at_eof(self) -> bool:
        return (self._eof or self._gone) and not self._chunks

    # ---- writing ----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send now if the socket takes it, else queue it (written when the socket is ready)."""
        if not data or self._closing or self._gone:
            return  # as asyncio's transports: writing to a closed stream is a no-op
        if self._unsent:
            self._unsent.append(data)
            self._unsent_size += len(data)
            return
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
            sent = 0
        except OSError as exc:
            self._lost(exc)
            return
        if sent < len(data):
            # TLS: nothing or everything is sent; a retry must pass the same bytes again.
            rest = data[sent:] if sent else data
            self._unsent.append(rest)
            self._unsent_size += len(rest)
            self._loop.add_writer(self._fd, self._write_ready)

    def _write_ready(self) -> None:
        while self._unsent:
            data = self._unsent[0]
            try:
                sent = self._sock.send(data)
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
                break
            except OSError as exc:
                self._lost(exc)
                return
            self._unsent_size -= sent
            if sent < len(data):
                self._unsent[0] = data[sent:]
                break
            self._unsent.popleft()
        drainer = self._drainer
        if self._unsent_size <= _LOW_WATER and drainer is not None and not drainer.done():
            drainer.set_result(None)
        if not self._unsent:
            self._loop.remove_writer(self._fd)
            if self._closing:
                self._finish()

    async def drain(self) -> None:
        """Wait while too much is queued; raises ConnectionResetError once the peer is gone."""
        if self._gone:
            await asyncio.sleep(0)  # let hang-up callbacks run first, as asyncio's drain does
            raise self._error or ConnectionResetError("Connection lost")
        if self._unsent_size <= _HIGH_WATER:
            return
        self._drainer = self._loop.create_future()
        try:
            await self._drainer
        finally:
            self._drainer = None
        if self._gone:
            raise self._error or ConnectionResetError("Connection lost")

    async def _flush(self) -> None:
        while self._unsent and not self._gone:
            self._drainer = self._loop.create_future()
            try:
                await self._drainer
            finally:
                self._drainer = None
        if self._gone:
            raise self._error or ConnectionResetError("Connection lost")

    # ---- TLS --------------------------------------------------------------------------------

    async def start_tls(
        self,
        context: ssl.SSLContext,
        *,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
    ) -> None:
        """Upgrade to TLS in place (server side if this stream was accepted)."""
        self._pause_reading()
        await self._flush()
        if self._chunks:
            # Bytes that arrived before the handshake would belong to no one: refuse.
            raise ConnectionError("data arrived before the TLS handshake")
        sock = context.wrap_socket(
            self._sock,
            server_side=self._server_side,
            server_hostname=server_hostname,
            do_handshake_on_connect=False,
        )
        self._sock = sock
        async with asyncio.timeout(ssl_handshake_timeout):
            while True:
                try:
                    sock.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    await self._ready(self._loop.add_reader, self._loop.remove_reader)
                except ssl.SSLWantWriteError:
                    await self._ready(self._loop.add_writer, self._loop.remove_writer)
        self._tls = True
        self._resume_reading()

    async def _ready(self, add: Callable[..., object], remove: Callable[[int], object]) -> None:
        waiter = self._loop.create_future()

        def wake() -> None:
            if not waiter.done():
                waiter.set_result(None)

        add(self._fd, wake)
        try:
            await waiter
        finally:
            remove(self._fd)

    # ---- closing ----------------------------------------------------------------------------

    def is_closing(self) -> bool:
        return self._closing or self._gone

    def close(self) -> None:
        """Close once what is queued has been sent (bounded in time)."""
        if self._closing or self._gone:
            return
        self._closing = True
        self._pause_reading()
        if self._unsent:
            self._close_timer = self._loop.call_later(_CLOSE_FLUSH_S, self._finish)
        else:
            self._finish()

    def wait_closed(self) -> asyncio.Future[None]:
        """Done once the connection is closed (by us, or the peer going away); may be cancelled.

        A future, not a coroutine, so its callbacks run on the next turn of the loop.
        """
        waiter = self._loop.create_future()
        if self._gone:
            waiter.set_result(None)
        else:
            self._closed_waiters.append(waiter)
        return waiter

    def _finish(self) -> None:
        """Orderly end: a TLS close_notify if we can send it, then the socket is closed."""
        if self._gone:
            return
        if self._unsent:  # the flush timed out
            self._loop.remove_writer(self._fd)
            self._unsent.clear()
            self._unsent_size = 0
        if not isinstance(self._sock, ssl.SSLSocket):
            self._lost(None)
            return
        if not self._tls:
            self._lost(None)  # no session (the handshake failed): nothing to end politely
            return
        with contextlib.suppress(OSError, ValueError):
            self._sock.unwrap()  # non-blocking: sends close_notify, not waiting for the peer's
        if not self._server_side:
            self._lost(None)  # a vendor connection ends at once: that cancels its request
            return
        # An agent may still be sending (a body we refused): closing a socket with unread data
        # resets the connection, and the agent could lose our answer. So, as asyncio's TLS
        # transport does, say we are done (FIN) and read and drop until it closes (bounded).
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)  # also leaves the socket plain for _drop
        self._reading = True
        self._loop.add_reader(self._fd, self._drop)
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._close_timer = self._loop.call_later(_LINGER_S, self._lost, None)

    def _drop(self) -> None:
        try:
            while self._sock.recv(65536):
                pass
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._lost(None)

    def _lost(self, exc: OSError | None) -> None:
        if self._gone:
            return
        self._gone = True
        if exc is not None and self._error is None:
            self._error = exc
        self._pause_reading()
        if self._unsent:
            self._loop.remove_writer(self._fd)
            self._unsent.clear()
            self._unsent_size = 0
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._sock.close()
        self._wake_reader()
        if self._drainer is not None and not self._drainer.done():
            self._drainer.set_result(None)
        for waiter in self._closed_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._closed_waiters.clear()


async def connect(
    address: str,
    port: int,
    context: ssl.SSLContext,
    server_hostname: str,
    limit: int = 65536,
) -> Stream:
    """A verified TLS stream to address:port (TLS names `server_hostname`)."""
    loop = asyncio.get_running_loop()
    try:
        ip = ipaddress.ip_address(address)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        candidates: list[tuple[socket.AddressFamily, tuple[Any, ...]]] = [(family, (address, port))]
    except ValueError:
        infos = await loop.getaddrinfo(address, port, type=socket.SOCK_STREAM)
        candidates = [(info[0], info[4]) for info in infos]
    error: OSError = OSError(f"no address for {address}")
    for family, addr in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, addr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        stream = Stream(sock, server_side=False, limit=limit)
        try:
            await stream.start_tls(context, server_hostname=server_hostname)
        except BaseException:
            stream.close()
            raise
        return stream
    raise error


Handler = Callable[[Stream, Stream], Coroutine[Any, Any, None]]


class Listener:
    """Accepts connections and runs `handler(stream, stream)` for each as a task."""

    def __init__(self, sock: socket.socket, handler: Handler, limit: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._handler = handler
        self._limit = limit
        self._tasks: set[asyncio.Task[None]] = set()
        self._serving = True
        self._loop.add_reader(sock.fileno(), self._accept)

    @property
    def sockets(self) -> list[socket.socket]:
        return [self._sock]

    def _accept(self) -> None:
        for _ in range(100):
            try:
                conn, _addr = self._sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in _ACCEPT_ERRNOS:
                    raise
                log.error("accept failed (%s); pausing for %s s", exc, _ACCEPT_PAUSE_S)
                self._loop.remove_reader(self._sock.fileno())
                self._loop.call_later(_ACCEPT_PAUSE_S, self._resume)
                return
            try:
                stream = Stream(conn, server_side=True, limit=self._limit)
            except OSError:
                conn.close()  # the peer left before we could set the socket up
                continue
            task = self._loop.create_task(self._handler(stream, stream))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _resume(self) -> None:
        if self._serving:
            self._loop.add_reader(self._sock.fileno(), self._accept)

    def close(self) -> None:
        """Stop accepting (connections being served go on, as with asyncio.Server)."""
        if self._serving:
            self._serving = False
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()

    async def wait_closed(self) -> None:
        return None


async def listen(handler: Handler, host: str, port: int, limit: int = 65536) -> Listener:
    """Listen on host:port (port 0: any free port), with SO_REUSEADDR and a backlog of 100."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _type, _proto, _name, addr = infos[0]
    sock = socket.create_server(addr, family=family, backlog=100)
    sock.setblocking(False)
    return Listener(sock, handler, limit)
