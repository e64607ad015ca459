"""The budget watcher: Redis's notifications of one session's keys, measured against its budget.

`ironcurtain run` (trusted, on the host) runs one per session, from before the MCP proxy can
write until teardown, with the session's own credential (a joined machine holds no other): it
PSUBSCRIBEs to `__keyspace@<db>__:<the session's space>*` (only Redis publishes there; the
session's user may subscribe, never publish, acl.session_rules), and measures every key it
hears of with MEMORY USAGE (SAMPLES 0: every element, so a set of small members in front of
huge ones is not under-estimated). budget.py does the arithmetic; a breach is handed to
`on_breach`, which removes the session's user (dropping its connections) and ends the session.
Where `run` holds the admin credential (a local session) it also hands in `clients` (CLIENT
LIST), and the watcher counts the session's connections and their buffers once a second.

Pub/sub delivers at most once: events sent while the watcher is not connected are lost. A
marker key only the watcher can name (a random record key: the session cannot list keys) tells
the two cases apart when it is back: the marker is gone -> Redis lost its data (a restart: no
persistence), nothing is held, counting starts again; the marker is there -> Redis kept the
session's keys but the watcher missed what happened to them -> `on_lost`, which ends the
session (fail closed: the budget cannot be known any more).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import redis

from . import acl, redis_keys
from .budget import Breach, Footprint, Limits, connections, connections_breach, counted

logger = logging.getLogger(__name__)

BATCH = 1000  # events measured in one pipelined round
RETRY_S = 0.5
CONNECTIONS_EVERY_S = 1.0


class NotAnnounced(RuntimeError):
    """Redis does not send keyspace notifications (notify-keyspace-events): no budget."""


class Watcher:
    def __init__(
        self,
        connect: Callable[[], redis.Redis],
        session_id: str,
        *,
        db: int = 0,
        limits: Limits | None = None,
        on_breach: Callable[[Breach], None],
        on_lost: Callable[[str], None],
        restore: Callable[[], bool] = lambda: False,
        clients: Callable[[], Sequence[Mapping[str, str]]] | None = None,
        announce_timeout_s: float = 5.0,
    ) -> None:
        """`clients`: CLIENT LIST as the admin sees it (only the admin may), where `run` holds
        the admin credential: the session's connections are then counted too."""
        self._connect = connect
        self.session_id = redis_keys.check_session(session_id)
        self._space = redis_keys.space(session_id)
        self._head = f"__keyspace@{db}__:".encode()
        self.pattern = f"__keyspace@{db}__:{self._space}*"
        self.footprint = Footprint(limits or Limits())
        self._on_breach = on_breach
        self._on_lost = on_lost
        self._restore = restore
        self._clients = clients
        self._user = acl.session_user(session_id)
        self._next_clients = 0.0
        self._announce_timeout_s = announce_timeout_s
        self.marker = f"{self._space}record:budget-{secrets.token_hex(16)}".encode()
        self._stop = threading.Event()
        self._client: redis.Redis | None = None
        self._pubsub: redis.client.PubSub | None = None
        self._thread: threading.Thread | None = None
        self.ended: str | None = None  # why it stopped watching before stop(), if it did
        self.subscriptions = 0  # how often it subscribed (1 + each time it came back)
        self._changed = threading.Condition()  # after each measurement and subscription

    # -- the lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Subscribed, and Redis seen announcing a write of the marker, before this returns:
        every write after it is heard. redis.RedisError, OSError or NotAnnounced otherwise."""
        self._subscribe()
        self._thread = threading.Thread(target=self._run, name="redis-budget", daemon=True)
        self._thread.start()

    def wait_for(self, predicate: Callable[[Watcher], bool], timeout_s: float) -> bool:
        """Block until predicate(self) holds after a measurement or subscription (tests, and
        anyone who must know the watcher caught up); False at the deadline."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout_s)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._close()

    # -- the loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set() and self.ended is None:
            try:
                self._watch()
                return
            except (redis.RedisError, OSError) as exc:
                if self._stop.is_set():
                    return
                logger.warning("budget watcher of %s: %s", self.session_id, exc)
                self._close()
                if self.ended is not None or not self._resume():
                    return

    def _watch(self) -> None:
        assert self._pubsub is not None
        while not self._stop.is_set():
            if self._check_connections():
                return
            message = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if message is None:
                continue
            keys = {self._key(message)}
            while len(keys) < BATCH:  # whatever else is waiting: one measurement per key
                more = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
                if more is None:
                    break
                keys.add(self._key(more))
            if self._measure(keys - {b""}):
                return

    def _key(self, message: dict[str, object]) -> bytes:
        channel = message.get("channel")
        if not isinstance(channel, bytes) or not channel.startswith(self._head):
            return b""
        return channel[len(self._head) :]

    def _measure(self, keys: set[bytes]) -> bool:
        """Sizes from Redis for the counted keys; True if that made a breach (reported)."""
        wanted = sorted(k for k in keys if counted(self.session_id, k))
        if not wanted:
            return False
        assert self._client is not None
        with self._client.pipeline(transaction=False) as pipe:
            for key in wanted:
                pipe.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0")
            sizes = pipe.execute()
        breach = None
        with self._changed:
            for key, size in zip(wanted, sizes, strict=True):
                size = None if size is None else int(size)
                breach = self.footprint.measured(key, size) or breach
            self._changed.notify_all()
        if breach is None:
            return False
        self.ended = f"over budget: {breach.describe()}"
        self._on_breach(breach)
        return True

    def _check_connections(self) -> bool:
        """The session's connections and their buffers, once a second; True on a breach."""
        if self._clients is None or time.monotonic() < self._next_clients:
            return False
        self._next_clients = time.monotonic() + CONNECTIONS_EVERY_S
        try:
            listing = self._clients()
        except (redis.RedisError, OSError) as exc:  # the admin's view only: keys still count
            logger.warning("budget watcher of %s: no client list: %s", self.session_id, exc)
            return False
        count, memory = connections(listing, self._user)
        breach = connections_breach(self.footprint.limits, count, memory)
        if breach is None:
            return False
        self.ended = f"over budget: {breach.describe()}"
        self._on_breach(breach)
        return True

    # -- (re)connecting ----------------------------------------------------------------------

    def _subscribe(self) -> None:
        """Connect, PSUBSCRIBE, write the marker and wait until Redis announces that write."""
        self._client = self._connect()
        self._pubsub = self._client.pubsub()
        self._pubsub.psubscribe(self.pattern)
        deadline = time.monotonic() + self._announce_timeout_s
        confirmed = written = False
        keys: set[bytes] = set()
        while time.monotonic() < deadline:
            message = self._pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
            if message is None:
                continue
            if message.get("type") == "psubscribe":
                confirmed = True
                self._client.set(self.marker, "1")  # no expiry: teardown deletes it
                written = True
                continue
            key = self._key(message)
            if written and key == self.marker:
                self.subscriptions += 1
                self._measure({*keys, key, redis_keys.pending(self.session_id).encode()})
                self._notify()
                return
            keys.add(key)
        what = "announced no change of its keys" if confirmed else "confirmed no subscription"
        raise NotAnnounced(
            f"Redis {what} within {self._announce_timeout_s:g}s (notify-keyspace-events must "
            "include K, g, $, l, z and x): the session's Redis budget cannot be enforced"
        )

    def _resume(self) -> bool:
        """Back to watching after the connection dropped; False if it must not (stopped, or
        Redis kept keys whose changes were missed: on_lost was told)."""
        while not self._stop.wait(RETRY_S):
            if self.ended is not None:  # a breach measured while subscribing again
                return False
            try:
                client = self._connect()
                try:
                    kept = client.get(self.marker) is not None
                finally:
                    client.close()
                if kept:
                    return self._lost(
                        "its budget watcher lost Redis's notifications while Redis kept the "
                        "session's keys, so what it holds is not known"
                    )
                self.footprint.forget()  # Redis lost everything (a restart): nothing is held
                self._subscribe()
                return True
            except redis.AuthenticationError:
                self._close()
                self._restore()  # Redis forgot the user too (a restart): put it back
            except (redis.ConnectionError, redis.TimeoutError, OSError, NotAnnounced) as exc:
                logger.warning("budget watcher of %s: %s", self.session_id, exc)
                self._close()
            except redis.RedisError as exc:  # an answer, not an outage: it cannot check
                self._close()
                return self._lost(f"its budget watcher cannot check its keys ({exc})")
        return False

    def _lost(self, why: str) -> bool:
        self.ended = "lost"
        self._on_lost(why)
        return False

    def _close(self) -> None:
        pubsub, client = self._pubsub, self._client
        self._pubsub = self._client = None
        if pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                pubsub.close()
        if client is not None:
            client.close()
