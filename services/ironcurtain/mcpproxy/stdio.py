"""A lean MCP client session to one backend over its stdin/stdout (newline-delimited JSON-RPC).

The same surface `Backend` uses of the SDK's `Client` (`list_tools`, `call_tool`, an async
context that starts and stops the child), without the SDK's per-request machinery: a request is
one line written to the pipe and a future keyed by its id; one reader task resolves them, and
hands the backend's notifications to `on_notification` (streams.Router.deliver: routed or
dropped).
The child is started in its own process group with a short list of ordinary inherited variables
plus the configured ones (stderr inherited), and stopped with stdin closed, a grace period, then
the whole group terminated, then killed.
A request in flight when the child dies fails at once with CONNECTION_CLOSED; one that outlives
its timeout raises TimeoutError and the backend is told to cancel it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Self

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, Process, SocketStream

from .. import __version__, strictjson
from ..strictjson import StrictJSONError
from .childenv import inherited
from .errors import BackendError, ResultTooLarge
from .jsonrpc import METHOD_NOT_FOUND
from .wire import CONNECTION_CLOSED, HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION

if TYPE_CHECKING:
    import mcp_types as types

logger = logging.getLogger(__name__)

GRACE_S = 2.0  # for the child to exit after its stdin closes, and again after SIGTERM
INITIALIZE_TIMEOUT_S = 60.0
# How long a call waits for a sandbox started on demand (a container start, ~1-2 s; more when
# many sessions start at once).
WAKE_WAIT_S = 60.0
# The longest line (one JSON-RPC message) read from a backend; past it the message is skipped
# unread and its request refused, so a 150 MB file read costs no memory (--max-result-bytes).
MAX_LINE_BYTES = 8 * 1024 * 1024
_ID = re.compile(rb'"id"\s*:\s*(\d{1,18})')
_ID_WINDOW = 512  # bytes kept of an oversize line's start and end, to find its id


class LineSession:
    """The JSON-RPC session over any byte stream pair; subclasses open and close the transport."""

    def __init__(
        self,
        label: str,
        *,
        initialize_timeout_s: float = INITIALIZE_TIMEOUT_S,
        max_line_bytes: int = MAX_LINE_BYTES,
        on_notification: Callable[[dict[str, Any]], None] | None = None,
        on_request: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        self.label = label  # names the backend in log lines
        self.on_notification = on_notification  # streams.Router.deliver: never blocks
        self.on_request = on_request  # streams.Router.serve: a request's result or error
        self._serving: set[asyncio.Task[None]] = set()  # its requests being answered
        self.max_line_bytes = max_line_bytes
        self.initialize_timeout_s = initialize_timeout_s
        self.protocol_version = ""
        self._send: ByteSendStream | None = None
        self._receive: ByteReceiveStream | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self._closed: str | None = None  # why no more requests can be answered
        self._reader: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def _open(self) -> tuple[ByteSendStream, ByteReceiveStream]:
        raise NotImplementedError

    async def _close_transport(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._send, self._receive = await self._open()
        self._reader = asyncio.get_running_loop().create_task(self._read())
        try:
            await self._initialize()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._send is None:
            return
        self._fail_all("the backend session was closed")
        for task in list(self._serving):
            task.cancel()
        with anyio.CancelScope(shield=True):
            await self._close_transport()
            self._send = None
            if self._reader is not None:
                self._reader.cancel()
                with anyio.move_on_after(GRACE_S):
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._reader

    async def _initialize(self) -> None:
        params = {
            "protocolVersion": LATEST_HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "ironcurtain-mcp-proxy", "version": __version__},
        }
        result = await self.request("initialize", params, self.initialize_timeout_s)
        version = result.get("protocolVersion")
        if version not in HANDSHAKE_PROTOCOL_VERSIONS:
            raise BackendError(
                CONNECTION_CLOSED, f"the backend speaks protocol version {version!r}"
            )
        self.protocol_version = version
        await self._write({"jsonrpc": "2.0", "method": "notifications/initialized"})

    # -- requests ----------------------------------------------------------------------------

    async def request(
        self, method: str, params: Mapping[str, Any], timeout_s: float
    ) -> dict[str, Any]:
        """The result of one request, or BackendError (the backend's error, or CONNECTION_CLOSED),
        or TimeoutError."""
        if self._closed is not None:
            raise BackendError(CONNECTION_CLOSED, self._closed)
        self._next_id += 1
        request_id = self._next_id
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending[request_id] = future
        # A timer, not a cancel scope: the cheapest deadline there is, and it cannot be lost.
        timer = loop.call_later(timeout_s, _expire, future)
        try:
            await self._write(
                {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
            )
            return await future
        except TimeoutError:
            await self._cancel(request_id, "timed out")
            raise
        except asyncio.CancelledError:
            with anyio.CancelScope(shield=True):
                await self._cancel(request_id, "the caller went away")
            raise
        finally:
            timer.cancel()
            self._pending.pop(request_id, None)

    async def list_tools(self, cursor: str | None = None) -> types.ListToolsResult:
        params = {} if cursor is None else {"cursor": cursor}
        result = await self.request("tools/list", params, self.initialize_timeout_s)
        import mcp_types as types  # a backend's results: loaded when one first starts

        return types.ListToolsResult.model_validate(result, by_name=False)

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        read_timeout_seconds: float,
        meta: Mapping[str, Any] | None = None,
    ) -> types.CallToolResult:
        params: dict[str, Any] = {"name": name, "arguments": dict(arguments)}
        if meta:
            params["_meta"] = dict(meta)  # our own progress token (streams.py), never the client's
        result = await self.request("tools/call", params, read_timeout_seconds)
        import mcp_types as types

        return types.CallToolResult.model_validate(result, by_name=False)

    async def _cancel(self, request_id: int, reason: str) -> None:
        if self._closed is None:
            notice = {"requestId": request_id, "reason": reason}
            message = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": notice}
            with contextlib.suppress(BackendError):  # the backend is gone: nothing left to cancel
                await self._write(message)

    async def _write(self, message: Mapping[str, Any]) -> None:
        send = self._send
        if send is None or self._closed is not None:
            raise BackendError(CONNECTION_CLOSED, self._closed or "the backend session is closed")
        line = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        try:
            await send.send(line)
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            self._fail_all(f"the backend's stdin is closed ({type(exc).__name__})")
            raise BackendError(CONNECTION_CLOSED, self._closed or "closed") from None

    # -- the reader --------------------------------------------------------------------------

    async def _read(self) -> None:
        receive = self._receive
        assert receive is not None
        partial: list[bytes] = []  # a line arriving in pieces, joined once (no quadratic copy)
        size = 0  # bytes in partial
        skipping: bytes | None = None  # an oversize line's start (and end), while it is skipped
        reason = "the backend closed its stdout (it exited)"
        try:
            async for chunk in receive:
                if b"\n" not in chunk:
                    if skipping is not None:
                        skipping = skipping[:_ID_WINDOW] + chunk[-_ID_WINDOW:]
                        continue
                    partial.append(chunk)
                    size += len(chunk)
                    if size > self.max_line_bytes:
                        joined = b"".join(partial)
                        skipping, partial, size = joined[:_ID_WINDOW] + joined[-_ID_WINDOW:], [], 0
                    continue
                first, *lines = chunk.split(b"\n")
                rest = lines.pop()
                if skipping is not None:
                    self._refuse_oversize(skipping[:_ID_WINDOW] + first[-_ID_WINDOW:])
                    skipping = None
                else:
                    partial.append(first)
                    lines.insert(0, b"".join(partial))
                partial, size = [rest], len(rest)
                for line in lines:
                    if len(line) > self.max_line_bytes:
                        self._refuse_oversize(line[:_ID_WINDOW] + line[-_ID_WINDOW:])
                    elif line.strip():
                        await self._handle(line)
                if size > self.max_line_bytes:
                    skipping, partial, size = rest[:_ID_WINDOW] + rest[-_ID_WINDOW:], [], 0
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            reason = f"reading from the backend failed ({type(exc).__name__})"
        finally:
            self._fail_all(reason)

    async def _handle(self, line: bytes) -> None:
        try:
            message = strictjson.loads(line, max_depth=None)
        except StrictJSONError as exc:
            if exc.kind == "invalid":  # not JSON at all (a stray print): nobody's answer
                logger.warning("backend %s wrote a line that is not JSON; ignored", self.label)
            else:  # JSON that readers disagree on: its call fails rather than wait or guess
                self._refuse_ambiguous(line[:_ID_WINDOW] + line[-_ID_WINDOW:], exc.kind)
            return
        if not isinstance(message, dict):
            logger.warning("backend %s wrote a JSON value that is not a message", self.label)
            return
        if "method" in message:
            if "id" in message and message["method"] != "ping" and self.on_request is not None:
                # Answered by its own task: the reader goes on (the answer may take a person).
                task = asyncio.get_running_loop().create_task(self._serve(message))
                self._serving.add(task)
                task.add_done_callback(self._serving.discard)
            elif "id" in message:  # a request to us: ping, or nothing we offer
                await self._answer(message)
            elif self.on_notification is not None:  # progress, logs, updates: routed or dropped
                try:
                    self.on_notification(message)
                except Exception:  # one odd notification must not stop the reader
                    logger.exception("backend %s: a notification could not be routed", self.label)
            return
        request_id = message.get("id")
        future = self._pending.get(request_id) if isinstance(request_id, int) else None
        if future is None or future.done():
            return  # a late answer to a cancelled or timed-out call
        error = message.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            text = error.get("message")
            future.set_exception(
                BackendError(
                    code if isinstance(code, int) else -32603,
                    text if isinstance(text, str) else "the backend answered with an error",
                    error.get("data"),
                )
            )
        elif isinstance(message.get("result"), dict):
            future.set_result(message["result"])
        else:
            future.set_exception(BackendError(-32603, "the backend answered without a result"))

    def _refuse_oversize(self, ends: bytes) -> None:
        """An answer too large to read fails its request with ResultTooLarge."""
        logger.warning(
            "backend %s wrote a message over %d bytes; refused", self.label, self.max_line_bytes
        )
        self._fail_answer_to(ends, lambda: ResultTooLarge(self.max_line_bytes))

    def _refuse_ambiguous(self, ends: bytes, kind: str) -> None:
        """A duplicate key, NaN, a lone surrogate, a non-UTF-8 line: the answer is not read
        (what would be forwarded is not what a stricter reader sees) and its request fails."""
        logger.warning("backend %s wrote a message that is not strict JSON (%s)", self.label, kind)
        why = f"the backend answered JSON that is refused ({kind.replace('_', ' ')})"
        self._fail_answer_to(ends, lambda: BackendError(-32603, why))

    def _fail_answer_to(self, ends: bytes, error: Callable[[], Exception]) -> None:
        """The request an unread answer was for (found by the id near either end, or the only
        one waiting) fails; with no id to go by, every waiting one does (fail closed: none gets
        a result it did not ask for)."""
        waiting = [i for i, f in self._pending.items() if not f.done()]
        found = {int(m) for m in _ID.findall(ends)} & set(waiting)
        for request_id in found if len(found) == 1 else waiting:
            self._pending[request_id].set_exception(error())

    async def _serve(self, message: dict[str, Any]) -> None:
        assert self.on_request is not None
        try:
            reply = await self.on_request(message)
        except Exception:  # the backend's request fails, not the session
            logger.exception("backend %s: its request could not be answered", self.label)
            reply = {"error": {"code": -32603, "message": "Internal error"}}
        answer = {"jsonrpc": "2.0", "id": message["id"], **reply}
        with contextlib.suppress(BackendError):
            await self._write(answer)

    async def _answer(self, message: dict[str, Any]) -> None:
        request_id = message["id"]
        if message["method"] == "ping":
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "result": {}}
        else:
            error = {"code": METHOD_NOT_FOUND, "message": "Method not found"}
            reply = {"jsonrpc": "2.0", "id": request_id, "error": error}
        with contextlib.suppress(BackendError):
            await self._write(reply)

    def _fail_all(self, reason: str) -> None:
        """No more answers will come: every waiting request fails now, and every later one."""
        if self._closed is None:
            self._closed = reason
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BackendError(CONNECTION_CLOSED, reason))


class StdioClient(LineSession):
    """A child process's stdin/stdout."""

    def __init__(
        self,
        command: str,
        args: list[str],
        env: Mapping[str, str] | None = None,
        *,
        initialize_timeout_s: float = INITIALIZE_TIMEOUT_S,
        max_line_bytes: int = MAX_LINE_BYTES,
        on_notification: Callable[[dict[str, Any]], None] | None = None,
        on_request: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        super().__init__(
            command,
            initialize_timeout_s=initialize_timeout_s,
            max_line_bytes=max_line_bytes,
            on_notification=on_notification,
            on_request=on_request,
        )
        self.command = command
        self.args = list(args)
        self.env = {**inherited(os.environ), **(env or {})}
        self._process: Process | None = None

    async def _open(self) -> tuple[ByteSendStream, ByteReceiveStream]:
        self._process = process = await anyio.open_process(
            [self.command, *self.args],
            env=self.env,
            stderr=None,  # inherited: the backend's complaints go where the proxy's go
            start_new_session=True,  # its own group: the stop reaches its children too
        )
        assert process.stdin is not None
        assert process.stdout is not None
        return process.stdin, process.stdout

    async def _close_transport(self) -> None:
        process = self._process
        if process is None:
            return
        self._process = None
        assert process.stdin is not None
        with anyio.move_on_after(GRACE_S):
            await process.stdin.aclose()
            await process.wait()
        if process.returncode is None:
            await _terminate_group(process)
        await process.aclose()


class SocketClient(LineSession):
    """A connection to a server's unix socket in the sandbox (sandbox.py), one child per
    connection.

    With `wake`, a missing socket means the sandbox container is not started yet (`ironcurtain
    run` starts it on demand): `wake()` asks for it, and the socket is tried every 0.1 s until it
    answers or `wake_wait_s` have passed."""

    def __init__(
        self,
        path: str,
        *,
        initialize_timeout_s: float = INITIALIZE_TIMEOUT_S,
        wake: Callable[[], None] | None = None,
        wake_wait_s: float = WAKE_WAIT_S,
        max_line_bytes: int = MAX_LINE_BYTES,
        on_notification: Callable[[dict[str, Any]], None] | None = None,
        on_request: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        super().__init__(
            path,
            initialize_timeout_s=initialize_timeout_s,
            max_line_bytes=max_line_bytes,
            on_notification=on_notification,
            on_request=on_request,
        )
        self.path = path
        self._stream: SocketStream | None = None
        self._wake = wake
        self._wake_wait_s = wake_wait_s

    async def _open(self) -> tuple[ByteSendStream, ByteReceiveStream]:
        try:
            self._stream = await anyio.connect_unix(self.path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            if self._wake is None:
                raise _no_answer(self.path, exc) from None
            self._stream = await self._woken()
        except OSError as exc:
            raise _no_answer(self.path, exc) from None
        return self._stream, self._stream

    async def _woken(self) -> SocketStream:
        assert self._wake is not None
        try:
            self._wake()
        except OSError as exc:
            raise ConnectionError(f"cannot ask for the sandbox to start: {exc}") from None
        with anyio.move_on_after(self._wake_wait_s):
            while True:
                await anyio.sleep(0.1)  # the socket appears when the sandbox is up; a deadline
                with contextlib.suppress(FileNotFoundError, ConnectionRefusedError):
                    return await anyio.connect_unix(self.path)
        raise ConnectionError(
            f"the sandbox socket {self.path} did not appear within {self._wake_wait_s:g} s of "
            "asking for the sandbox to start"
        )

    async def _close_transport(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()  # the sandbox stops the child when its pipe closes
            self._stream = None


def _no_answer(path: str, exc: OSError) -> ConnectionError:
    return ConnectionError(f"the sandbox socket {path} does not answer ({exc.strerror or exc})")


async def _terminate_group(process: Process) -> None:
    """SIGTERM to the child's whole group, a grace period, then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        with anyio.move_on_after(GRACE_S):
            await process.wait()
            return


def _expire(future: asyncio.Future[dict[str, Any]]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
