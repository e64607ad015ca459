"""Live updates: Redis keyspace notifications, fanned out to Server-Sent Event streams.

Redis itself announces every change of a pending set (an escalation arrives or leaves) and every
decision written (`notify-keyspace-events` in images/redis/redis.conf); nobody can publish on
those channels, so an event cannot be forged, and it carries only key names: the page fetches
what changed through the API, as the logged-in member. One subscriber thread per gunicorn worker
feeds every stream of that worker. Streams are bounded: a fixed number of slots per worker (each
holds a gthread thread), a heartbeat comment, and a lifetime after which the browser reconnects.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from ..escalation import redis_keys

logger = logging.getLogger(__name__)

RESET = "reset"  # the subscription was lost and is back: listeners refetch everything


@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # "pending" (a session's pending set changed), "decided", or RESET
    session_id: str = ""
    escalation_id: str = ""

    def frame(self) -> str:
        data = {"session": self.session_id, "id": self.escalation_id}
        return f"event: {self.kind}\ndata: {json.dumps(data)}\n\n"


def patterns(db: int) -> tuple[str, str, str]:
    """The keyspace channels of every pending set and every decision, a person's or the
    auto-reviewer's (literal ACL patterns)."""
    space = f"__keyspace@{db}__:{redis_keys.PREFIX}:s:*:"
    return f"{space}pending", f"{space}decision:*", f"{space}review:*"


def parse(channel: bytes | str, db: int) -> Event | None:
    """The event a keyspace notification stands for; None for anything else (pure)."""
    name = channel.decode(errors="replace") if isinstance(channel, bytes) else channel
    head = f"__keyspace@{db}__:"
    if not name.startswith(head):
        return None
    key = name[len(head) :]
    session_id = redis_keys.session_of_key(key)
    if session_id is None:
        return None
    rest = key[len(redis_keys.space(session_id)) :]
    if rest == "pending":
        return Event("pending", session_id)
    kind, _, escalation_id = rest.partition(":")
    if kind in ("decision", "review") and escalation_id:
        try:
            if redis_keys.session_of(escalation_id) == session_id:
                return Event("decided", session_id, escalation_id)
        except ValueError:
            return None
    return None


class Full(Exception):
    """Every live-update slot of this worker is taken."""


class Hub:
    """One subscription to Redis, many listeners (each a queue read by one SSE stream)."""

    def __init__(
        self,
        pubsub: Callable[[], Any],
        db: int = 0,
        *,
        slots: int = 4,
        retry_s: float = 1.0,
    ) -> None:
        self._pubsub = pubsub
        self._db = db
        self._slots = slots
        self._retry_s = retry_s
        self._lock = threading.Lock()
        self._listeners: set[queue.SimpleQueue[Event]] = set()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.subscribed = threading.Event()  # set while the subscription stands

    def listen(self) -> queue.SimpleQueue[Event]:
        with self._lock:
            if len(self._listeners) >= self._slots:
                raise Full(f"all {self._slots} live-update slots of this worker are in use")
            listener: queue.SimpleQueue[Event] = queue.SimpleQueue()
            self._listeners.add(listener)
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="sse-hub", daemon=True)
                self._thread.start()
            return listener

    def leave(self, listener: queue.SimpleQueue[Event]) -> None:
        with self._lock:
            self._listeners.discard(listener)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def publish(self, event: Event) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener.put(event)

    def _run(self) -> None:
        while not self._stop.is_set():
            subscription = None
            try:
                subscription = self._pubsub()
                subscription.psubscribe(*patterns(self._db))
                while not self._stop.is_set():
                    message = subscription.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message.get("type") == "psubscribe":
                        if not self.subscribed.is_set():
                            self.subscribed.set()
                            self.publish(Event(RESET))  # anything missed: refetch
                        continue
                    event = parse(message.get("channel", b""), self._db)
                    if event is not None:
                        self.publish(event)
            except redis.RedisError as exc:
                logger.warning("live updates: the Redis subscription failed: %s", exc)
            finally:
                self.subscribed.clear()
                if subscription is not None:
                    with contextlib.suppress(redis.RedisError):
                        subscription.close()
            self._stop.wait(self._retry_s)


def stream(
    hub: Hub,
    listener: queue.SimpleQueue[Event],
    *,
    allowed: Callable[[], bool],
    heartbeat_s: float = 15.0,
    lifetime_s: float = 120.0,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[str]:
    """The text of one SSE stream: events as they come, a heartbeat comment, an end after
    `lifetime_s` (the browser reconnects, `retry`), and at once when `allowed()` turns false
    (logout, member removed: checked at every heartbeat)."""
    ends = clock() + lifetime_s
    try:
        yield "retry: 1000\n: live\n\n"
        while True:
            left = ends - clock()
            if left <= 0:
                return
            try:
                event = listener.get(timeout=min(heartbeat_s, left))
            except queue.Empty:
                if not allowed():
                    return
                yield ": ping\n\n"
                continue
            batch = [event]
            while True:  # coalesce what queued up meanwhile: one refetch serves them all
                try:
                    batch.append(listener.get_nowait())
                except queue.Empty:
                    break
            yield "".join(e.frame() for e in dict.fromkeys(batch))
    finally:
        hub.leave(listener)
