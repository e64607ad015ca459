"""The fake vendor: asyncio + h11 over TLS. Behaviour is chosen by the request's `model`:

- any model: a normal answer (JSON, or SSE when `"stream": true`) with usage figures;
- "gated": the SSE stream sends its first events, then waits until `release()` is called;
  "gated-N": the same after N more text deltas of "tok " (four characters each);
- "big-N": a non-streamed Messages answer whose text is N MiB (usage still at its end);
- "error-500" / "error-429": the vendor's error JSON with that status;
- "hang": never answers (the proxy's timeout must fire);
- "ticks-N-MS": SSE, N events MS milliseconds apart, each carrying its send time (benchmarks).

Subscriptions (`oauth`, see oauth.py): bearer OAuth tokens are checked (beta header, expiry:
401 as the vendor answers) and the token endpoint answers refresh grants with rotating tokens.

Scripted answers: text put in `replies` is the next non-streamed Messages answer, in order (a
test scripts what "the model" says, hostile answers included); empty: the usual greeting.

Played conversations (`play`, see play.py): Messages and Responses (responses.py) requests are
answered from a script (tool calls, then a final text) and every request is recorded to a file,
for real clients in a session.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import h11

from . import oauth as oauthing
from . import play as playing
from . import responses as responding

INPUT_TOKENS = 12
OUTPUT_TOKENS = 34


def _gated(model: str) -> tuple[bool, int]:
    """Whether a stream waits at the gate, and how many extra deltas it sends first."""
    if model == "gated":
        return True, 0
    if model.startswith("gated-") and model[6:].isdigit():
        return True, int(model[6:])
    return False, 0


@dataclass(frozen=True, slots=True)
class Seen:
    host: str
    method: str
    target: str
    headers: dict[str, list[str]]
    body: bytes


def _key_digest(headers: dict[str, list[str]]) -> str:
    """SHA-256 of the key the vendor received, so a test in another process can check it."""
    values = headers.get("x-api-key") or headers.get("x-goog-api-key") or []
    if not values:
        values = [v.removeprefix("Bearer ") for v in headers.get("authorization", [])]
    return hashlib.sha256(values[0].encode()).hexdigest() if values else "none"


def _sse(event: str, data: object) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def anthropic_message(model: str, text: str) -> dict[str, object]:
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS},
    }


def openai_chat(model: str, text: str) -> dict[str, object]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": INPUT_TOKENS,
            "completion_tokens": OUTPUT_TOKENS,
            "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
        },
    }


@dataclass
class FakeVendor:
    """Start with `await start(ssl_context)`; inspect `seen`; `release()` opens the gate."""

    seen: deque[Seen] = field(default_factory=lambda: deque(maxlen=1000))
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    server: asyncio.Server | None = None
    connections: int = 0  # TLS connections accepted (upstream reuse shows here)
    aborted: int = 0  # streams whose client (the proxy) went away before the gate opened
    replies: deque[str] = field(default_factory=deque)  # scripted answers, first in first out
    script: playing.Script | None = None  # Messages requests answered from it (play.py)
    record_to: Path | None = None  # every request appended here, one JSON line each
    oauth: oauthing.Issuer | None = None  # subscription logins (oauth.py), when set

    async def start(self, context: ssl.SSLContext, host: str = "127.0.0.1", port: int = 0) -> int:
        self.server = await asyncio.start_server(self._handle, host, port, ssl=context)
        return self.server.sockets[0].getsockname()[1]

    last_key_digest: str = ""  # of the latest request (tests send one at a time)

    def release(self) -> None:
        self.gate.set()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await self._read(conn, reader)
                if request is None:
                    return
                await self._answer(conn, writer, request, body, reader)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (ConnectionError, ssl.SSLError, h11.ProtocolError):
            return
        finally:
            writer.close()

    async def _read(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> tuple[h11.Request | None, bytes]:
        request = None
        chunks = []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return request, b"".join(chunks)
            else:
                return None, b""

    async def _answer(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        req: h11.Request,
        body: bytes,
        reader: asyncio.StreamReader,
    ) -> None:
        headers: dict[str, list[str]] = {}
        for name, value in req.headers:
            headers.setdefault(name.decode(), []).append(value.decode("latin-1"))
        path = req.target.decode().partition("?")[0]
        self.last_key_digest = _key_digest(headers)
        if self.record_to is not None:
            pairs = [(n.decode(), v.decode("latin-1")) for n, v in req.headers]
            seen = playing.record(req.method.decode(), req.target.decode(), pairs, body)
            with self.record_to.open("a") as out:
                out.write(json.dumps(seen) + "\n")
        self.seen.append(
            Seen(
                headers.get("host", [""])[0],
                req.method.decode(),
                req.target.decode(),
                headers,
                body,
            )
        )
        try:
            doc = json.loads(body) if body else {}
        except json.JSONDecodeError:
            doc = {}
        if self.oauth is not None:
            if path == oauthing.TOKEN_PATH and req.method == b"POST":
                return self._json(conn, writer, *self.oauth.grant(body))
            refused = self.oauth.check(headers)
            if refused is not None:
                return self._json(conn, writer, *refused)
        model = str(doc.get("model", "")) if isinstance(doc, dict) else ""
        openai = (
            path.startswith("/v1/chat") or path.startswith("/v1/responses") or path == "/v1/models"
        )
        if model == "hang":
            await asyncio.Event().wait()
        if model.startswith("error-"):
            status = int(model[6:])
            if openai:
                err: object = {"error": {"message": "fake failure", "type": "server_error"}}
            else:
                err = {"type": "error", "error": {"type": "api_error", "message": "fake failure"}}
            return self._json(conn, writer, status, err)
        if path == "/v1/messages/count_tokens":
            return self._json(conn, writer, 200, {"input_tokens": INPUT_TOKENS})
        if path == "/v1/models":
            return self._json(
                conn,
                writer,
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": "fake-model", "object": "model", "created": 1, "owned_by": "fake"}
                    ],
                },
            )
        if path == "/v1/messages" and self.script is not None and isinstance(doc, dict):
            number, turn = self.script.turn_for(doc)
            if doc.get("stream"):
                events: list[bytes | None] = list(playing.sse_events(model, number, turn))
                return await self._stream(conn, writer, reader, events)
            return self._json(conn, writer, 200, playing.message(model, number, turn))
        if path == "/v1/messages":
            if doc.get("stream"):
                return await self._anthropic_stream(conn, writer, reader, model)
            text = self.replies.popleft() if self.replies else "hello from the fake"
            if model.startswith("big-") and model[4:].isdigit():
                text = "x" * (int(model[4:]) * 1024 * 1024)
            return self._json(conn, writer, 200, anthropic_message(model, text))
        if path == "/v1/chat/completions":
            if doc.get("stream"):
                # As the vendor: the usage chunk comes only when the client asks for it.
                options = doc.get("stream_options")
                usage = isinstance(options, dict) and options.get("include_usage") is True
                return await self._openai_stream(conn, writer, reader, model, usage)
            return self._json(conn, writer, 200, openai_chat(model, "hello from the fake"))
        if path == "/v1/responses" and self.script is not None and isinstance(doc, dict):
            number, turn = responding.turn_for(self.script, doc)
            items = responding.output_items(number, turn, responding.namespaces(doc))
            if doc.get("stream"):
                played: list[bytes | None] = list(responding.sse_events(model, number, items))
                return await self._stream(conn, writer, reader, played)
            return self._json(conn, writer, 200, responding.response(model, number, items))
        if path == "/v1/responses":
            return self._json(
                conn,
                writer,
                200,
                {
                    "id": "resp_fake",
                    "object": "response",
                    "model": model,
                    "status": "completed",
                    "output": [],
                    "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS},
                },
            )
        if ":generateContent" in path:
            return self._json(
                conn,
                writer,
                200,
                {
                    "candidates": [{"content": {"parts": [{"text": "hi"}], "role": "model"}}],
                    "usageMetadata": {
                        "promptTokenCount": INPUT_TOKENS,
                        "candidatesTokenCount": OUTPUT_TOKENS,
                    },
                    "modelVersion": "gemini-fake",
                },
            )
        return self._json(
            conn,
            writer,
            404,
            {"type": "error", "error": {"type": "not_found_error", "message": path}},
        )

    def _json(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, status: int, doc: object
    ) -> None:
        data = json.dumps(doc).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(data)),
            (b"x-fake-key-sha256", self.last_key_digest.encode()),
        ]
        writer.write(
            conn.send(h11.Response(status_code=status, headers=headers))
            + conn.send(h11.Data(data))
            + conn.send(h11.EndOfMessage())
        )

    async def _stream(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        reader: asyncio.StreamReader,
        events: list[bytes | None],
    ) -> None:
        """Send SSE chunks; None = wait for the gate. Chunked framing, one write per event."""
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        writer.write(conn.send(h11.Response(status_code=200, headers=headers)))
        for item in events:
            if item is None:
                await writer.drain()
                # Wait for the gate, or notice that the client hung up (reads EOF) meanwhile.
                gate = asyncio.ensure_future(self.gate.wait())
                eof = asyncio.ensure_future(reader.read(1))
                await asyncio.wait({gate, eof}, return_when=asyncio.FIRST_COMPLETED)
                gate.cancel()
                eof.cancel()
                # Let the read finish cancelling: the connection's next request reads again.
                await asyncio.gather(gate, eof, return_exceptions=True)
                if not self.gate.is_set():
                    self.aborted += 1
                    return
                continue
            writer.write(conn.send(h11.Data(item)))
            await writer.drain()
        writer.write(conn.send(h11.EndOfMessage()))

    async def _anthropic_stream(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        reader: asyncio.StreamReader,
        model: str,
    ) -> None:
        if model.startswith("ticks-"):
            return await self._ticks(conn, writer, model)
        start = anthropic_message(model, "")
        start["content"] = []
        start["usage"] = {"input_tokens": INPUT_TOKENS, "output_tokens": 1}
        events: list[bytes | None] = [
            _sse("message_start", {"type": "message_start", "message": start}),
            _sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "first "},
                },
            ),
        ]
        gated, extra = _gated(model)
        for _ in range(extra):
            delta = {"type": "text_delta", "text": "tok "}
            events.append(
                _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": delta},
                )
            )
        if gated:
            events.append(None)
        events += [
            _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "second"},
                },
            ),
            _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": OUTPUT_TOKENS},
                },
            ),
            _sse("message_stop", {"type": "message_stop"}),
        ]
        await self._stream(conn, writer, reader, events)

    async def _openai_stream(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        reader: asyncio.StreamReader,
        model: str,
        include_usage: bool = False,
    ) -> None:
        def chunk(
            delta: dict[str, object] | None, usage: object = None, finish: object = None
        ) -> bytes:
            doc = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
                if delta is not None
                else [],
            }
            if include_usage:
                doc["usage"] = usage  # null on every chunk but the last, as the vendor sends
            return f"data: {json.dumps(doc)}\n\n".encode()

        events: list[bytes | None] = [chunk({"role": "assistant", "content": "first "})]
        gated, extra = _gated(model)
        events += [chunk({"content": "tok "}) for _ in range(extra)]
        if gated:
            events.append(None)
        events.append(chunk({"content": "second"}, finish="stop"))
        if include_usage:
            usage = {
                "prompt_tokens": INPUT_TOKENS,
                "completion_tokens": OUTPUT_TOKENS,
                "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
            }
            events.append(chunk(None, usage=usage))
        events.append(b"data: [DONE]\n\n")
        await self._stream(conn, writer, reader, events)

    async def _ticks(self, conn: h11.Connection, writer: asyncio.StreamWriter, model: str) -> None:
        _, count, gap_ms = model.split("-")
        headers = [(b"content-type", b"text/event-stream")]
        writer.write(conn.send(h11.Response(status_code=200, headers=headers)))
        for i in range(int(count)):
            await asyncio.sleep(int(gap_ms) / 1000)  # pacing the stream, not waiting for anything
            doc = {
                "type": "content_block_delta",
                "index": 0,
                "t": time.perf_counter(),
                "i": i,
                "delta": {"type": "text_delta", "text": "x"},
            }
            writer.write(
                conn.send(
                    h11.Data(f"event: content_block_delta\ndata: {json.dumps(doc)}\n\n".encode())
                )
            )
            await writer.drain()
        writer.write(conn.send(h11.EndOfMessage()))
