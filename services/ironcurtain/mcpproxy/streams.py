"""A backend's notifications, each routed to the one client stream it belongs to, or dropped.

A backend is shared by every client of the proxy, so what it sends is attributed here, never
broadcast:
- progress: a client's `progressToken` never reaches the backend. Each forwarded request that
  carries one gets a fresh random token of ours (`Router.forwarding`); a backend's progress with
  a token we did not hand out for a request in flight is dropped, and one with ours goes to that
  request's stream only, under the client's own token.
- log messages: MCP ties them to no request, so one is relayed only while exactly one request is
  in flight on that backend and its client asked for logs (`logging/setLevel`); with two or
  more in flight nobody can tell whose it is, and it is dropped.
- resource updates: only to the streams of sessions that subscribed to that URI (a subscribe
  is decided like a read of the URI, gate.py).
- a backend's requests (sampling, elicitation): attributed as logs are (exactly one request in
  flight, its client declared the capability and can take a stream), then decided and audited
  by `on_request` (gate.py) before anything reaches the client; unattributable: refused.
What is relayed is rebuilt by notices.py. A stream holds at most `MAX_EVENTS` waiting events;
more are dropped (progress and logs are advisory), and a call's stream takes at most
`MAX_CALL_EVENTS` in all, so a chatty backend cannot grow memory (server.py bounds what a GET
stream's slow reader leaves in its socket's buffer).
"""

from __future__ import annotations

import contextlib
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import anyio

from . import notices
from .jsonrpc import METHOD_NOT_FOUND

MAX_EVENTS = 64
MAX_CALL_EVENTS = 1000  # events relayed to one call's stream in all: past it, dropped
# Asks the client (http.py): (method, params) -> the client's result, or raises.
Ask = Callable[[str, dict[str, Any]], Awaitable[Any]]
# Decides, audits and forwards a backend's request (gate.py): (method, params, the stream of the
# one call it can belong to, or None) -> the JSON-RPC reply's `result` or `error` member.
OnRequest = Callable[[str, Any, "Listener | None"], Awaitable[dict[str, Any]]]


class Listener:
    """One client stream: a request's SSE answer, or a session's standalone GET stream."""

    def __init__(
        self,
        progress_token: str | int | None = None,
        log_level: str | None = None,
        *,
        max_events: int = MAX_EVENTS,
        max_total: int | None = None,
        capabilities: frozenset[str] = frozenset(),
        ask: Ask | None = None,
    ) -> None:
        self.progress_token = progress_token
        self.log_level = log_level
        self.capabilities = capabilities  # the requests its client can answer (methods)
        self.ask = ask
        self.max_events = max_events
        self.max_total = max_total
        self.offered = 0
        self.dropped = 0
        self._queue: deque[dict[str, Any]] = deque()
        self._wake = anyio.Event()
        self._closed = False

    def offer(self, message: dict[str, Any]) -> bool:
        """Never blocks (called from a backend's reader): a full or closed stream drops it."""
        full = self.max_total is not None and self.offered >= self.max_total
        if self._closed or full or len(self._queue) >= self.max_events:
            self.dropped += 1
            return False
        self.offered += 1
        self._queue.append(message)
        self._wake.set()
        return True

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    async def next(self) -> dict[str, Any] | None:
        """The next event, or None once closed and drained."""
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._closed:
                return None
            await self._wake.wait()
            self._wake = anyio.Event()


class Router:
    """One backend's notifications to the streams of the requests it is serving."""

    def __init__(self) -> None:
        self._progress: dict[str, Listener] = {}  # our token -> the request's stream
        self._logs: list[Listener] = []
        self._in_flight = 0
        self._watchers: dict[str, list[Listener]] = {}  # URI -> subscribed sessions' streams
        self._askers: list[Listener] = []  # streams whose client can answer a request
        self.on_request: OnRequest | None = None  # set by the gate
        self.dropped = 0

    @contextlib.contextmanager
    def forwarding(self, listener: Listener | None) -> Iterator[dict[str, Any] | None]:
        """While one request is forwarded: the `_meta` to send with it (our progress token)."""
        self._in_flight += 1
        token = None
        if listener is not None and listener.progress_token is not None:
            token = "ic-" + secrets.token_urlsafe(16)
            self._progress[token] = listener
        logs = listener is not None and listener.log_level is not None
        if logs:
            assert listener is not None
            self._logs.append(listener)
        asks = listener is not None and listener.ask is not None and bool(listener.capabilities)
        if asks:
            assert listener is not None
            self._askers.append(listener)
        try:
            yield None if token is None else {"progressToken": token}
        finally:
            self._in_flight -= 1
            if token is not None:
                del self._progress[token]
            if logs:
                assert listener is not None
                self._logs.remove(listener)
            if asks:
                assert listener is not None
                self._askers.remove(listener)

    async def serve(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """A backend's request to the client: the reply's `result` or `error` member."""
        method = message.get("method")
        if self.on_request is None or method not in notices.CAPABILITY:
            return {"error": {"code": METHOD_NOT_FOUND, "message": "Method not found"}}
        sole = self._in_flight == 1 and len(self._askers) == 1
        return await self.on_request(
            method, message.get("params"), self._askers[0] if sole else None
        )

    def watch(self, uri: str, listener: Listener) -> None:
        watchers = self._watchers.setdefault(uri, [])
        if listener not in watchers:
            watchers.append(listener)

    def unwatch(self, uri: str, listener: Listener) -> bool:
        """Whether `listener` watched `uri` here (it no longer does)."""
        watchers = self._watchers.get(uri)
        if watchers is None or listener not in watchers:
            return False
        watchers.remove(listener)
        if not watchers:
            del self._watchers[uri]
        return True

    def watched(self, uri: str) -> bool:
        return uri in self._watchers

    def watched_uris(self) -> list[str]:
        return list(self._watchers)

    def forget(self, listener: Listener) -> None:
        for uri in [u for u, w in self._watchers.items() if listener in w]:
            self.unwatch(uri, listener)

    def deliver(self, message: Mapping[str, Any]) -> None:
        """A notification the backend wrote (called by its reader; never blocks, never raises
        for what the backend sent)."""
        method, params = message.get("method"), message.get("params")
        if method == notices.PROGRESS and isinstance(params, Mapping):
            token = params.get("progressToken")
            listener = self._progress.get(token) if isinstance(token, str) else None
            if listener is not None and listener.progress_token is not None:
                built = notices.progress(params, listener.progress_token)
                if built is not None:
                    listener.offer(built)
                    return
        elif method == notices.LOG and self._in_flight == 1 and len(self._logs) == 1:
            listener = self._logs[0]
            assert listener.log_level is not None
            built = notices.log(params, listener.log_level)
            if built is not None:
                listener.offer(built)
                return
        elif method == notices.UPDATED:
            found = notices.updated(params)
            watchers = self._watchers.get(found[0], []) if found is not None else []
            for listener in watchers:
                assert found is not None
                listener.offer(found[1])
            if watchers:
                return
        self.dropped += 1
