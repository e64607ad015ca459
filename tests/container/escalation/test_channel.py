"""The escalation channel on our real Redis: ask, wait, decide first-wins, expire, fail closed."""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis

from ironcurtain.escalation import dispatch, redis_keys
from ironcurtain.escalation.channel import Channel, Outcome, connect, read_credential
from ironcurtain.escalation.escalator import RedisEscalator
from ironcurtain.escalation.record import DEADLINE
from ironcurtain.escalation.remember import Scope, choices
from ironcurtain.escalation.types import EscalationRequest, Verdict
from ironcurtain.escalation.users import restore_session_user
from ironcurtain.escalation.webhook import load

from ..redisserver import RedisServer, free_port, redis_server
from ..rqjobs import run_burst


def request(session: str = "s1", path: str = "/work/src/app.py", **extra: Any) -> EscalationRequest:
    fields: dict[str, Any] = {
        "session_id": session,
        "worktree": "wt-main",
        "agent": "claude-code",
        "server": "filesystem",
        "tool": "write_file",
        "arguments": {"path": path, "content": "print('hi')"},
        "rule": "writes-outside-src",
        "reason": "writes need a human",
        "task": "fix the failing test",
        "paths": (path,),
        **extra,
    }
    return EscalationRequest(**fields)


@pytest.fixture
def client(team_redis: RedisServer) -> Iterator[redis.Redis]:
    found = connect(team_redis.url, team_redis.admin_file, ca_file=team_redis.ca_file)
    found.flushdb()
    found.zadd(redis_keys.OPEN, {"s1": 0, "s2": 0})  # listed, as `ironcurtain run` makes them
    yield found
    found.close()


@pytest.fixture
def channel(client: redis.Redis) -> Channel:
    return Channel(client)


def next_escalation_id(client: redis.Redis, timeout_s: float = 4) -> str:
    """Block until the session pushes the escalation onto the inbox (no polling): its id."""
    popped = client.blpop([redis_keys.INBOX], timeout=timeout_s)
    assert popped is not None, "no escalation reached the inbox"
    return popped[1].decode().split(" ")[0]


def escalate_in_thread(
    escalator: RedisEscalator, req: EscalationRequest, timeout_s: float
) -> concurrent.futures.Future:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(asyncio.run, escalator.escalate(req, timeout_s))
    pool.shutdown(wait=False)
    return future


def test_an_approval_wakes_the_waiting_call_with_who_and_why(channel: Channel) -> None:
    audited: list[Mapping[str, Any]] = []
    escalator = RedisEscalator(channel, audit=audited.append)
    waiting = escalate_in_thread(escalator, request(), 30)
    escalation_id = next_escalation_id(channel.redis)
    assert [e.id for e in channel.pending()] == [escalation_id]

    ruling = channel.decide(escalation_id, Verdict.APPROVED, by="alice", reason="looks fine")

    assert ruling.outcome is Outcome.DECIDED
    outcome = waiting.result(timeout=10)
    assert outcome.verdict is Verdict.APPROVED
    assert outcome.allowed
    assert outcome.decided_by == "alice"
    assert "looks fine" in outcome.message
    assert channel.pending() == []
    assert audited[0]["verdict"] == "approved"
    assert audited[0]["decided_by"] == "alice"
    assert audited[0]["escalation_id"] == escalation_id
    [entry] = channel.history()
    assert (entry.decision.by, entry.decision.reason) == ("alice", "looks fine")


def test_a_denial_is_a_denial_naming_the_human(channel: Channel) -> None:
    escalator = RedisEscalator(channel)
    waiting = escalate_in_thread(escalator, request(), 30)
    channel.decide(next_escalation_id(channel.redis), Verdict.DENIED, by="bob", reason="no")
    outcome = waiting.result(timeout=10)
    assert outcome.verdict is Verdict.DENIED
    assert not outcome.allowed
    assert "denied by bob" in outcome.message


def test_many_deciders_race_and_exactly_one_wins(channel: Channel) -> None:
    escalation = channel.create(request(), 30)
    deciders = 24
    barrier = threading.Barrier(deciders)

    def decide(n: int) -> Any:
        verdict = Verdict.APPROVED if n % 2 else Verdict.DENIED
        barrier.wait(timeout=10)
        return channel.decide(escalation.id, verdict, by=f"human-{n}")

    with concurrent.futures.ThreadPoolExecutor(max_workers=deciders) as pool:
        rulings = list(pool.map(decide, range(deciders)))

    winners = [r for r in rulings if r.outcome is Outcome.DECIDED]
    assert len(winners) == 1
    standing = winners[0].decision
    assert all(r.outcome is Outcome.ALREADY for r in rulings if r is not winners[0])
    assert all(r.decision == standing for r in rulings)
    assert channel.wait(escalation) == standing
    assert len(channel.history()) == 1


def test_no_decision_by_the_deadline_expires_and_says_it_timed_out(channel: Channel) -> None:
    audited: list[Mapping[str, Any]] = []
    escalator = RedisEscalator(channel, audit=audited.append)

    outcome = asyncio.run(escalator.escalate(request(), 0.3))

    assert outcome.verdict is Verdict.EXPIRED
    assert not outcome.allowed
    assert "timed out" in outcome.message
    assert "not a refusal" in outcome.message
    assert audited[0]["verdict"] == "expired"
    assert audited[0]["decided_by"] == DEADLINE
    # A human arriving after that is refused, and shown the expiry that stands.
    late = channel.decide(outcome.escalation_id or "", Verdict.APPROVED, by="slow-alice")
    assert late.outcome is Outcome.LATE
    assert late.decision is not None
    assert late.decision.verdict is Verdict.EXPIRED


def test_a_decision_after_the_deadline_is_refused_and_recorded_as_expired(
    client: redis.Redis,
) -> None:
    now = [1000.0]
    channel = Channel(client, clock=lambda: now[0])
    escalation = channel.create(request(), 5)
    now[0] += 6

    ruling = channel.decide(escalation.id, Verdict.APPROVED, by="alice")

    assert ruling.outcome is Outcome.LATE
    assert ruling.decision is not None
    assert ruling.decision.verdict is Verdict.EXPIRED
    assert channel.wait(escalation).verdict is Verdict.EXPIRED
    assert channel.pending() == []


def test_an_abandoned_escalation_leaves_the_pending_list_recorded_as_expired(
    client: redis.Redis,
) -> None:
    now = [1000.0]
    channel = Channel(client, clock=lambda: now[0])
    escalation = channel.create(request(), 5)
    now[0] += 6
    assert [e.id for e in channel.pending()] == [escalation.id]  # shown as expired, still there
    now[0] += 60
    assert channel.pending() == []
    [entry] = channel.history()
    assert (entry.escalation.id, entry.decision.verdict) == (escalation.id, Verdict.EXPIRED)


def test_deciding_an_unknown_escalation_is_refused(channel: Channel) -> None:
    assert channel.decide("nope", Verdict.APPROVED, by="alice").outcome is Outcome.MISSING


def test_approve_and_remember_allows_similar_calls_in_that_session_only(
    channel: Channel,
) -> None:
    escalator = RedisEscalator(channel)
    waiting = escalate_in_thread(escalator, request(path="/work/src/a.py"), 30)
    escalation = channel.get(next_escalation_id(channel.redis))
    assert escalation is not None
    [directory] = [
        s
        for s in choices("filesystem", "write_file", escalation.arguments, escalation.paths, ())  # type: ignore[union-attr]
        if s.kind == "prefix"
    ]
    assert directory.value == "/work/src"
    channel.decide(escalation.id, Verdict.APPROVED, by="alice", remember=directory)
    assert waiting.result(timeout=10).allowed

    # Same session, same directory: approved at once, without a human.
    again = asyncio.run(escalator.escalate(request(path="/work/src/b.py"), 30))
    assert again.allowed
    assert (again.decided_by or "").startswith("remembered:")
    assert channel.pending() == []
    # Outside the directory, or another session: a human is asked (here nobody answers).
    outside = asyncio.run(escalator.escalate(request(path="/work/other/b.py"), 0.2))
    assert outside.verdict is Verdict.EXPIRED
    other = asyncio.run(escalator.escalate(request(session="s2", path="/work/src/b.py"), 0.2))
    assert other.verdict is Verdict.EXPIRED
    # Revoked: asked again.
    assert channel.revoke("s1", directory.id)
    revoked = asyncio.run(escalator.escalate(request(path="/work/src/b.py"), 0.2))
    assert revoked.verdict is Verdict.EXPIRED


def test_only_an_approval_can_be_remembered(channel: Channel) -> None:
    escalation = channel.create(request(), 30)
    scope = Scope("exact", "x", "filesystem", "write_file")
    with pytest.raises(ValueError, match="only an approval"):
        channel.decide(escalation.id, Verdict.DENIED, by="alice", remember=scope)


def test_the_history_stream_is_bounded(client: redis.Redis) -> None:
    channel = Channel(client, history_maxlen=5)
    for n in range(12):
        escalation = channel.create(request(), 30)
        channel.decide(escalation.id, Verdict.DENIED, by=f"h{n}")
    assert client.xlen(redis_keys.HISTORY) == 5
    assert [e.decision.by for e in channel.history()] == [f"h{n}" for n in range(11, 6, -1)]


def test_history_filters_by_session_verdict_and_text(channel: Channel) -> None:
    for session, verdict in (("s1", Verdict.APPROVED), ("s2", Verdict.DENIED)):
        escalation = channel.create(request(session=session), 30)
        channel.decide(escalation.id, verdict, by="alice", reason=f"because {session}")
    assert [e.escalation.session_id for e in channel.history(session_id="s2")] == ["s2"]
    assert [e.decision.verdict for e in channel.history(verdict="approved")] == [Verdict.APPROVED]
    assert [e.decision.reason for e in channel.history(text="BECAUSE S1")] == ["because s1"]


def test_redis_unreachable_denies_at_once_saying_so(team_redis: RedisServer) -> None:
    escalator = RedisEscalator.connect(
        f"rediss://127.0.0.1:{free_port()}/0", _password_file_nowhere(), ca_file=team_redis.ca_file
    )
    started = time.monotonic()
    outcome = asyncio.run(escalator.escalate(request(), 30))
    assert outcome.verdict is Verdict.UNAVAILABLE
    assert "unreachable" in outcome.message
    assert time.monotonic() - started < 5


def test_a_failing_audit_hook_turns_the_approval_into_a_denial(channel: Channel) -> None:
    def broken(_entry: Mapping[str, Any]) -> None:
        raise OSError("disk full")

    escalator = RedisEscalator(channel, audit=broken)
    waiting = escalate_in_thread(escalator, request(), 30)
    channel.decide(next_escalation_id(channel.redis), Verdict.APPROVED, by="alice")
    outcome = waiting.result(timeout=10)
    assert outcome.verdict is Verdict.UNAVAILABLE
    assert "audit" in outcome.message


class Receiver:
    """A local webhook receiver: the paths and bodies it was sent."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        received = self.received

        class Hook(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _run_jobs(channel: Channel, *, webhook: bool) -> str:
    """What the worker does for the next inbox entry: dispatch it, then run its jobs."""
    entry = channel.redis.blpop([redis_keys.INBOX], timeout=4)
    assert entry is not None
    jobs = dispatch.queue(channel.redis)
    done = dispatch.handle(channel, jobs, entry[1], reviewer=False, webhook=webhook)
    assert run_burst(jobs, channel.redis)
    return done


def test_the_notify_job_prints_a_line_for_the_session_and_the_webhook_file_is_called(
    channel: Channel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hook = Receiver()
    config = tmp_path / "webhook.json"
    config.write_text(json.dumps({"url": hook.url("/from-the-file"), "format": "plain"}))
    monkeypatch.setenv("IRONCURTAIN_WEBHOOK_FILE", str(config))
    # The old variable, set too: a URL in the environment is never read (it is a credential).
    monkeypatch.setenv("IRONCURTAIN_WEBHOOK_URL", hook.url("/from-the-environment"))
    pubsub = channel.redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(redis_keys.notices("s1"))
    try:
        escalation = channel.create(request(arguments={"path": "/x", "secret": "hunter2"}), 30)
        assert _run_jobs(channel, webhook=load(config) is not None) == "notify+webhook"
        message = next_message(pubsub)
    finally:
        pubsub.close()
        hook.close()
    assert message is not None
    line = message["data"].decode()
    assert escalation.id in line
    assert "filesystem__write_file" in line
    assert line.startswith("\a")
    assert [path for path, _ in hook.received] == ["/from-the-file"]
    assert escalation.id.encode() in hook.received[0][1]
    assert b"hunter2" not in hook.received[0][1]


def test_a_webhook_url_in_the_environment_alone_is_never_called(
    channel: Channel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hook = Receiver()
    monkeypatch.setenv("IRONCURTAIN_WEBHOOK_FILE", str(tmp_path / "none.json"))
    for name in ("IRONCURTAIN_WEBHOOK_URL", "IRONCURTAIN_WEBHOOK", "WEBHOOK_URL"):
        monkeypatch.setenv(name, hook.url(f"/{name}"))
    try:
        channel.create(request(), 30)
        configured = load(tmp_path / "none.json") is not None
        assert not configured
        assert _run_jobs(channel, webhook=configured) == "notify"
        # Even a deliver job enqueued by hand finds no file and calls nothing.
        jobs = dispatch.queue(channel.redis)
        channel.create(request(), 30)
        entry = channel.redis.blpop([redis_keys.INBOX], timeout=4)
        assert entry is not None
        dispatch.handle(channel, jobs, entry[1], reviewer=False, webhook=True)
        assert run_burst(jobs, channel.redis)
    finally:
        hook.close()
    assert hook.received == []


def next_message(pubsub: Any, timeout_s: float = 5) -> Any:
    """The next data message (subscribe confirmations are skipped), or None by the deadline."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
        if message is not None:
            return message
    return None


def _password_file_nowhere() -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "redis_password"
    path.write_text(f"ironcurtain-session-s1 {'x' * 32}")
    return path


class TestRedisKilledAndBack:
    """Its own Redis: killed while a call waits, then brought back at the same URL."""

    @pytest.fixture
    def own_server(self, image: Callable[[str], str], tmp_path: Path) -> Iterator[RedisServer]:
        with redis_server(image("redis"), tmp_path) as found:
            yield found

    def test_redis_killed_mid_wait_denies_quickly_then_works_again_without_restart(
        self, own_server: RedisServer
    ) -> None:
        session_file = own_server.session_file("s1")
        escalator = RedisEscalator.connect(own_server.url, session_file, ca_file=own_server.ca_file)
        observer = connect(own_server.url, own_server.admin_file, ca_file=own_server.ca_file)
        try:
            waiting = escalate_in_thread(escalator, request(), 60)
            next_escalation_id(observer)
            killed_at = time.monotonic()
            own_server.kill()
            outcome = waiting.result(timeout=15)
            assert outcome.verdict is Verdict.UNAVAILABLE
            assert "unreachable" in outcome.message
            assert time.monotonic() - killed_at < 5

            down = asyncio.run(escalator.escalate(request(), 60))
            assert down.verdict is Verdict.UNAVAILABLE

            own_server.revive()
            # Redis forgot the session's user; `ironcurtain run` puts it back (same password).
            restore_session_user(
                observer, "s1", read_credential(session_file), project="ic-test-s1", machine="t"
            )
            waiting = escalate_in_thread(escalator, request(), 60)
            Channel(observer).decide(next_escalation_id(observer), Verdict.APPROVED, by="alice")
            assert waiting.result(timeout=10).verdict is Verdict.APPROVED
        finally:
            escalator.close()
            observer.close()
