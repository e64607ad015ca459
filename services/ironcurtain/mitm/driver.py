"""One h11 driver for every door of the proxy: vendor hosts (server.py) and registries (depot.py).

Reading a head (idle wait, then a deadline for the whole head, then its size), reading a body
(one deadline, a size limit), and writing a whole answer (no body for HEAD) live here once, so
both doors frame, bound and answer the same way. The upgrade refusal is here too.
"""

from __future__ import annotations

import asyncio

import h11

from .errors import Refusal
from .stream import Stream

READ_SIZE = 65536


async def next_event(conn: h11.Connection, reader: Stream) -> h11.Event:
    """The next event, reading as needed (no deadline: the caller sets one)."""
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event  # type: ignore[return-value]  # h11 types PAUSED/NEED_DATA as events
        conn.receive_data(await reader.read(READ_SIZE))


async def read_head(
    conn: h11.Connection, reader: Stream, idle_s: float, head_s: float, max_bytes: int
) -> h11.Event:
    """Wait up to `idle_s` for a request to begin, then `head_s` for its whole head.

    h11 bounds only an incomplete head (`max_incomplete_event_size`); a complete one that
    arrived at once is measured here (RemoteProtocolError with status hint 431).
    """
    event = conn.next_event()
    if event is h11.NEED_DATA:
        async with asyncio.timeout(idle_s):
            conn.receive_data(await reader.read(READ_SIZE))
        event = conn.next_event()
        if event is h11.NEED_DATA:  # the head came in pieces: it has head_s
            async with asyncio.timeout(head_s):
                event = await next_event(conn, reader)
    if isinstance(event, h11.Request):
        # raw_items(): one list, not a Python call per item of h11's Sequence iteration
        size = len(event.target) + sum(len(n) + len(v) + 4 for n, v in event.headers.raw_items())
        if size > max_bytes:
            raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
    return event  # type: ignore[return-value]


async def read_body(
    conn: h11.Connection, reader: Stream, writer: Stream, limit: int, timeout_s: float
) -> bytes:
    """The whole request body; Refusal 413 over `limit`, 408 past `timeout_s`, 400 malformed."""
    if conn.they_are_waiting_for_100_continue:
        writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
    chunks: list[bytes] = []
    size = 0
    # One deadline for the whole body; a timer is armed only while waiting for bytes (a small
    # body usually arrives with its head).
    deadline = asyncio.get_running_loop().time() + timeout_s
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                async with asyncio.timeout_at(deadline):
                    event = await next_event(conn, reader)
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
    except h11.RemoteProtocolError:
        raise Refusal(400, "http", "malformed request body (the bytes are not shown)") from None


def answer(
    conn: h11.Connection,
    status: int,
    headers: list[tuple[bytes, bytes]],
    data: bytes,
    head: bool,
    reason: bytes = b"",
) -> bytes:
    """The bytes of a whole answer; a HEAD answer keeps its length but has no body."""
    out = conn.send(h11.Response(status_code=status, headers=headers, reason=reason))
    if data and not head:
        out += conn.send(h11.Data(data))
    return out + conn.send(h11.EndOfMessage())
