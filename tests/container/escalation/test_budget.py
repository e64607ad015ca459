"""F7: one session filling the team Redis (noeviction: every session's escalations and every
decision fail once it is full). Each attack is made with a session's credential exactly as
`ironcurtain run` hands it to the MCP proxy, against our real Redis, with the budget watcher
running as `run` runs it (the session's own credential; on a breach the session's user is
removed with the admin credential). Controls: another session's round trip works meanwhile, and
a normal session with a few escalations never trips its budget.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from ironcurtain.escalation import acl, redis_keys, users
from ironcurtain.escalation.budget import MIB, Breach, Limits
from ironcurtain.escalation.channel import Channel, connect
from ironcurtain.escalation.types import EscalationRequest, Verdict
from ironcurtain.escalation.watcher import Watcher

from ..redisserver import RedisServer

A, B = "aaaa3333", "bbbb4444"
LIMITS = Limits(keys=200, bytes=4 * MIB)  # small, so each flood is quick
NEAR_MIB = MIB - 4096  # a value Redis takes (proto-max-bulk-len 1mb)


def request(session: str) -> EscalationRequest:
    return EscalationRequest(
        session_id=session, worktree="wt", agent="claude-code", server="filesystem",
        tool="move_file", arguments={"source": "/workspace/a", "destination": "/workspace/b"},
        rule="moves-need-a-human", reason="moves need a human",
        paths=("/workspace/a", "/workspace/b"), arguments_digest="d" * 64,
    )  # fmt: skip


@dataclass
class Watched:
    """A session as `run` holds it: its credential file, its proxy's client, its watcher."""

    session_id: str
    credential_file: Path
    proxy: redis.Redis
    watcher: Watcher
    breaches: list[Breach] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)

    def wait_ended(self, timeout_s: float = 15.0) -> None:
        assert self.ended.wait(timeout_s), "the budget watcher did not end the session"


@pytest.fixture
def admin(team_redis: RedisServer) -> Iterator[redis.Redis]:
    found = connect(team_redis.url, team_redis.admin_file, ca_file=team_redis.ca_file)
    found.flushdb()
    for user in users.session_users(found):
        found.execute_command("ACL", "DELUSER", user)
    yield found
    found.close()


@pytest.fixture
def watch(team_redis: RedisServer, admin: redis.Redis) -> Iterator[Callable[..., Watched]]:
    made: list[Watched] = []

    def start(session_id: str, limits: Limits = LIMITS) -> Watched:
        credential_file = team_redis.session_file(session_id)

        def dial() -> redis.Redis:
            return connect(team_redis.url, credential_file, ca_file=team_redis.ca_file)

        def as_admin(do: Callable[[redis.Redis], Any]) -> Any:
            # A client of its own each time: the fixture's may be on a Redis that restarted.
            client = connect(team_redis.url, team_redis.admin_file, ca_file=team_redis.ca_file)
            try:
                return do(client)
            finally:
                client.close()

        def restore() -> bool:
            credential = acl.Credential.parse(credential_file.read_text())
            return as_admin(
                lambda c: users.restore_session_user(
                    c, session_id, credential, project=f"ic-test-{session_id}", machine="test"
                )
            )

        holder: list[Watched] = []

        def breached(breach: Breach) -> None:  # what `run` does (Session._end_session)
            holder[0].breaches.append(breach)
            as_admin(lambda c: users.remove_session_user(c, session_id))
            holder[0].ended.set()

        def lost(why: str) -> None:
            holder[0].lost.append(why)
            as_admin(lambda c: users.remove_session_user(c, session_id))
            holder[0].ended.set()

        watcher = Watcher(
            dial, session_id, limits=limits, on_breach=breached, on_lost=lost, restore=restore,
            clients=lambda: as_admin(lambda c: c.client_list()),  # as a local `run` does
        )  # fmt: skip
        found = Watched(session_id, credential_file, dial(), watcher)
        holder.append(found)
        watcher.start()
        made.append(found)
        return found

    yield start
    for found in made:
        found.watcher.stop()
        found.proxy.close()


@pytest.fixture
def approval(team_redis: RedisServer, admin: redis.Redis) -> Iterator[Channel]:
    client = connect(team_redis.url, team_redis.approval_file, ca_file=team_redis.ca_file)
    yield Channel(client)
    client.close()


def flood(push: Callable[[redis.client.Pipeline, int], Any], stop: Watched, most: int) -> int:
    """Pipelined writes until the session is stopped (its connection dropped): how many went."""
    sent = 0
    try:
        while sent < most and not stop.ended.is_set():
            with stop.proxy.pipeline(transaction=False) as pipe:
                for n in range(sent, sent + 50):
                    push(pipe, n)
                pipe.execute()
            sent += 50
    except redis.RedisError:
        pass  # the user is gone: its connections dropped
    return sent


def writes_until_refused(write: Callable[[int], Any], most: int) -> int:
    """How many writes went in before Redis refused one (the user gone); most: none refused."""
    for n in range(most):
        try:
            write(n)
        except redis.RedisError:
            return n
    return most


def subscription_refused(listener: redis.client.PubSub, subscribe: Callable[[], Any]) -> bool:
    try:
        subscribe()
        listener.get_message(timeout=2)  # the refusal comes as the reply
    except redis.exceptions.NoPermissionError:
        return True
    return False


def assert_stopped(session: Watched, admin: redis.Redis) -> None:
    session.wait_ended()
    assert admin.execute_command("ACL", "GETUSER", acl.session_user(session.session_id)) is None
    with pytest.raises(redis.RedisError):
        session.proxy.ping()  # its connections were dropped, and it cannot log in again
    space = redis_keys.space(session.session_id)
    assert list(admin.scan_iter(match=f"{space}*")) == []  # what it held is freed


def assert_round_trip(session_file: Path, team_redis: RedisServer, approval: Channel) -> None:
    """Control: another session escalates, a human decides, it reads the decision."""
    client = connect(team_redis.url, session_file, ca_file=team_redis.ca_file)
    try:
        channel = Channel(client)
        escalation = channel.create(request(B), 30)
        assert approval.decide(escalation.id, Verdict.APPROVED, by="alice").accepted
        assert channel.wait(escalation).verdict is Verdict.APPROVED
    finally:
        client.close()


# -- floods ------------------------------------------------------------------------------


def test_a_session_flooding_record_keys_is_stopped_while_another_session_escalates(
    watch: Callable[..., Watched], admin: redis.Redis, team_redis: RedisServer, approval: Channel
) -> None:
    attacker = watch(A)
    victim_file = team_redis.session_file(B)
    space = redis_keys.space(A)
    sent = flood(lambda p, n: p.set(f"{space}record:flood-{n}", "x"), attacker, 100_000)
    assert_stopped(attacker, admin)
    assert attacker.breaches[0].limit == "keys"
    assert sent < 5_000  # stopped soon after its 200th key, not when Redis was full
    assert_round_trip(victim_file, team_redis, approval)


def test_a_session_storing_big_values_is_stopped(
    watch: Callable[..., Watched], admin: redis.Redis, team_redis: RedisServer, approval: Channel
) -> None:
    attacker = watch(A)
    victim_file = team_redis.session_file(B)
    space, big = redis_keys.space(A), b"v" * NEAR_MIB
    sent = writes_until_refused(
        lambda n: attacker.proxy.set(f"{space}record:big-{n}", big, ex=3600), 200
    )  # 200 MB unless stopped
    assert_stopped(attacker, admin)
    assert attacker.breaches[0].limit == "bytes"
    assert sent < 40
    assert_round_trip(victim_file, team_redis, approval)


@pytest.mark.parametrize("member_size", [NEAR_MIB, 64], ids=["huge-members", "many-members"])
def test_a_session_growing_its_pending_set_is_stopped(
    member_size: int,
    watch: Callable[..., Watched],
    admin: redis.Redis,
    team_redis: RedisServer,
    approval: Channel,
) -> None:
    attacker = watch(A)
    victim_file = team_redis.session_file(B)
    pending = redis_keys.pending(A)

    def push(pipe: redis.client.Pipeline, n: int) -> None:
        pipe.zadd(pending, {f"{n:08d}".encode().ljust(member_size, b"m"): n})

    flood(push, attacker, 2_000_000)
    assert_stopped(attacker, admin)
    assert attacker.breaches[0].limit == "bytes"  # one key, however many members
    assert_round_trip(victim_file, team_redis, approval)


def test_a_session_cannot_write_wake_lists_or_any_other_kind_of_key(
    watch: Callable[..., Watched], admin: redis.Redis
) -> None:
    """What it may store stays countable: no lists, no hashes, no other type under its keys."""
    attacker = watch(A)
    space, client = redis_keys.space(A), attacker.proxy
    wake = redis_keys.wake(f"{A}.0123456789abcdef")
    for attack in (
        lambda: client.rpush(wake, "1"),
        lambda: client.lpush(wake, "1"),
        lambda: client.rpush(f"{space}record:list", "1"),
        lambda: client.zadd(f"{space}record:zset", {"m": 1}),
        lambda: client.set(redis_keys.pending(A), "x"),
        lambda: client.rpush(redis_keys.pending(A), "x"),
        lambda: client.append(f"{space}record:x", "y"),
        lambda: client.setrange(f"{space}record:x", 900_000, "y"),
        lambda: client.hset(f"{space}record:h", "f", "v"),
        lambda: client.sadd(f"{space}record:s", "m"),
        lambda: client.xadd(f"{space}record:stream", {"f": "v"}),
        lambda: client.copy(f"{space}record:x", f"{space}record:y"),
        lambda: client.execute_command("SETEX", f"{space}record:x", 10, "v"),
        lambda: client.execute_command("MSET", f"{space}record:x", "v"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            attack()
    assert not attacker.ended.is_set()
    assert attacker.proxy.set(f"{space}record:control", "x")  # control: a record is stored


def test_a_value_key_or_member_over_1_mb_is_refused_by_redis(
    watch: Callable[..., Watched], admin: redis.Redis
) -> None:
    attacker = watch(A)
    space = redis_keys.space(A)
    over = b"v" * (MIB + 1)
    for attack in (
        lambda: attacker.proxy.set(f"{space}record:over", over),
        lambda: attacker.proxy.set(f"{space}record:".encode() + over, "v"),
        lambda: attacker.proxy.zadd(redis_keys.pending(A), {over: 1}),
    ):
        with pytest.raises(redis.RedisError, match=r"(?i)protocol|bulk|closed by server"):
            attack()  # a protocol error, and Redis closes the connection (sometimes first)
    attacker.proxy.connection_pool.disconnect()  # Redis closed them: new ones for the control
    assert attacker.proxy.set(f"{space}record:near", b"v" * NEAR_MIB)  # control: just under 1 MB
    assert admin.strlen(f"{space}record:near") == NEAR_MIB
    assert admin.exists(f"{space}record:over") == 0


def test_a_session_opening_many_connections_is_stopped(
    watch: Callable[..., Watched], admin: redis.Redis, team_redis: RedisServer, approval: Channel
) -> None:
    attacker = watch(A)
    victim_file = team_redis.session_file(B)
    opened: list[redis.Redis] = []
    try:
        for _ in range(150):  # the default: 100
            client = connect(team_redis.url, attacker.credential_file, ca_file=team_redis.ca_file)
            opened.append(client)
            try:
                client.ping()
            except redis.RedisError:
                break  # stopped already: its user is gone
        assert_stopped(attacker, admin)
        assert attacker.breaches[0].limit == "connections"
        for client in opened:
            with pytest.raises(redis.RedisError):
                client.ping()
    finally:
        for client in opened:
            client.close()
    assert_round_trip(victim_file, team_redis, approval)


def test_a_session_filling_its_connections_buffers_is_stopped(
    watch: Callable[..., Watched], admin: redis.Redis, team_redis: RedisServer
) -> None:
    """A connection blocked in BLPOP stops reading commands but Redis keeps buffering what it
    sends (up to client-query-buffer-limit each): memory no key holds."""
    attacker = watch(A, Limits(keys=200, bytes=4 * MIB, connection_bytes=8 * MIB))
    wake = redis_keys.wake(f"{A}.0123456789abcdef")
    value = b"v" * (900 * 1024)
    command = b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
    key = f"{redis_keys.space(A)}record:queued".encode()
    queued = command % (len(key), key, len(value), value)
    conns = []
    pool = attacker.proxy.connection_pool
    try:
        for _ in range(4):
            conn = pool.make_connection()
            conn.connect()
            conn.send_command("BLPOP", wake, 0)  # blocks: what follows is only buffered
            conn.send_packed_command([queued * 3])  # about 2.7 MB, under the 4 MB per connection
            conns.append(conn)
        assert_stopped(attacker, admin)
        assert attacker.breaches[0].limit == "connection bytes"
    finally:
        for conn in conns:
            conn.disconnect()


# -- the watcher's own channel ---------------------------------------------------------


@pytest.mark.parametrize(
    "channel",
    [
        f"__keyspace@0__:{redis_keys.space(B)}*",
        "__keyspace@0__:*",
        f"__keyspace@0__:{redis_keys.PREFIX}:s:*",
        f"__keyspace@0__:{redis_keys.PREFIX}:s:aaaa3333*",  # its id without the separator
        f"__keyspace@0__:{redis_keys.space(A)}**",
        f"__keyspace@0__:{redis_keys.space(A)}[a-z]*",
        "__keyevent@0__:set",
        "__keyevent@0__:*",
        f"__keyspace@1__:{redis_keys.space(B)}*",
    ],
)
def test_a_session_cannot_subscribe_to_another_sessions_keyspace_events(
    channel: str, watch: Callable[..., Watched]
) -> None:
    attacker = watch(A)
    listener = attacker.proxy.pubsub()
    try:
        assert subscription_refused(listener, lambda: listener.psubscribe(channel))
    finally:
        listener.close()
    concrete = channel.replace("*", "pending").replace("[a-z]", "")
    if redis_keys.space(A) not in concrete:  # nor one of those channels by its name
        listener = attacker.proxy.pubsub()
        try:
            assert subscription_refused(listener, lambda: listener.subscribe(concrete))
        finally:
            listener.close()
    own = attacker.proxy.pubsub()  # control: its own, exactly as its watcher asks
    try:
        pattern = f"__keyspace@0__:{redis_keys.space(A)}*"
        assert not subscription_refused(own, lambda: own.psubscribe(pattern))
    finally:
        own.close()


def test_a_session_cannot_forge_its_keyspace_events_and_a_forged_one_changes_no_count(
    watch: Callable[..., Watched], admin: redis.Redis
) -> None:
    attacker = watch(A)
    space = redis_keys.space(A)
    channel = f"__keyspace@0__:{space}record:big-0"
    with pytest.raises(redis.exceptions.NoPermissionError):
        attacker.proxy.publish(channel, "del")
    big = b"v" * NEAR_MIB
    for n in range(3):
        attacker.proxy.set(f"{space}record:big-{n}", big)
    # Even a "del" that did reach the watcher (here the admin's) costs only a measurement:
    # sizes come from Redis, so the keys still count and the fourth one is over 4 MiB.
    for n in range(3):
        admin.publish(f"__keyspace@0__:{space}record:big-{n}", "del")
    went = writes_until_refused(lambda n: attacker.proxy.set(f"{space}record:big-{3 + n}", big), 7)
    assert went < 7
    assert_stopped(attacker, admin)
    assert attacker.breaches[0].limit == "bytes"


# -- controls ---------------------------------------------------------------------------


def test_control_a_normal_session_with_a_few_escalations_never_trips_its_budget(
    watch: Callable[..., Watched], admin: redis.Redis, approval: Channel
) -> None:
    session = watch(A, Limits())  # the default budget
    channel = Channel(session.proxy)
    for n in range(10):
        escalation = channel.create(request(A), 30)
        verdict = Verdict.APPROVED if n % 2 else Verdict.DENIED
        assert approval.decide(escalation.id, verdict, by="alice").accepted
        assert channel.wait(escalation).verdict is verdict
    # Ten records and the watcher's marker, once the last events are measured (the pending
    # set and the wake lists come and go: empty now, so gone).
    assert session.watcher.wait_for(lambda w: w.footprint.keys == 11, 5)
    assert not session.ended.is_set()
    assert session.watcher.ended is None
    assert session.watcher.footprint.keys == 11
    assert session.watcher.footprint.total < 64 * 1024


def test_a_watcher_that_missed_notifications_while_redis_kept_the_keys_ends_the_session(
    watch: Callable[..., Watched], admin: redis.Redis
) -> None:
    session = watch(A)
    user = acl.session_user(A)
    admin.execute_command("CLIENT", "KILL", "USER", user)  # every connection of the session
    session.wait_ended()
    assert session.lost
    assert "kept the session's keys" in session.lost[0]
    assert session.breaches == []
    assert admin.execute_command("ACL", "GETUSER", user) is None


def test_after_a_redis_restart_the_watcher_puts_the_user_back_and_counts_again(
    watch: Callable[..., Watched], admin: redis.Redis, team_redis: RedisServer
) -> None:
    session = watch(A)
    team_redis.kill()
    team_redis.revive()  # no persistence: no keys, no session users
    fresh = connect(team_redis.url, team_redis.admin_file, ca_file=team_redis.ca_file)
    try:
        # The watcher puts the user back and subscribes again, its marker written anew.
        assert session.watcher.wait_for(lambda w: w.subscriptions == 2, 15)
        assert fresh.exists(session.watcher.marker)
        assert session.lost == []
        proxy = connect(team_redis.url, session.credential_file, ca_file=team_redis.ca_file)
        space, big = redis_keys.space(A), b"v" * NEAR_MIB
        try:
            went = writes_until_refused(lambda n: proxy.set(f"{space}record:big-{n}", big), 40)
        finally:
            proxy.close()
        assert went < 40
        session.wait_ended()
        assert session.breaches
        assert session.breaches[0].limit == "bytes"
    finally:
        fresh.close()
