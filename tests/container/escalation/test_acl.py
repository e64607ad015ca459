"""Issue #15's attacks, each made with a session's credential exactly as `ironcurtain run` hands
it to the MCP proxy, against our real Redis: all refused. Controls: the session's own round trip
works, and a decision through the approval API resumes it.

Session A is the attacker; session B has an escalation pending (made with B's own credential).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from rq import Queue
from rq.serializers import JSONSerializer

from ironcurtain.approval.app import create_app
from ironcurtain.escalation import acl, dispatch, redis_keys, users
from ironcurtain.escalation.channel import Channel, connect
from ironcurtain.escalation.escalator import RedisEscalator
from ironcurtain.escalation.labels import Registration
from ironcurtain.escalation.record import Decision, Escalation
from ironcurtain.escalation.remember import Scope
from ironcurtain.escalation.types import EscalationRequest, Verdict

from ..approvalconfig import approval_config, log_in
from ..redisserver import RedisServer
from ..rqjobs import run_burst

A, B = "aaaa1111", "bbbb2222"
TOKEN = "t" * 40


def request(session: str, **extra: Any) -> EscalationRequest:
    fields: dict[str, Any] = {
        "session_id": session,
        "worktree": "wt",
        "agent": "claude-code",
        "server": "filesystem",
        "tool": "move_file",
        "arguments": {"source": "/workspace/src/a.py", "destination": "/workspace/src/b.py"},
        "rule": "moves-need-a-human",
        "reason": "moves need a human",
        "paths": ("/workspace/src/a.py", "/workspace/src/b.py"),
        "arguments_digest": "d" * 64,
        **extra,
    }
    return EscalationRequest(**fields)


@pytest.fixture
def admin(team_redis: RedisServer) -> Iterator[redis.Redis]:
    found = connect(team_redis.url, team_redis.admin_file, ca_file=team_redis.ca_file)
    found.flushdb()
    yield found
    found.close()


@pytest.fixture
def attacker(team_redis: RedisServer, admin: redis.Redis) -> Iterator[Channel]:
    """Session A's channel, as its MCP proxy would open it."""
    client = connect(team_redis.url, team_redis.session_file(A), ca_file=team_redis.ca_file)
    yield Channel(client)
    client.close()


@pytest.fixture
def victim(team_redis: RedisServer, admin: redis.Redis) -> Iterator[Channel]:
    client = connect(team_redis.url, team_redis.session_file(B), ca_file=team_redis.ca_file)
    yield Channel(client)
    client.close()


@pytest.fixture
def approval(team_redis: RedisServer, admin: redis.Redis) -> Iterator[Channel]:
    client = connect(team_redis.url, team_redis.approval_file, ca_file=team_redis.ca_file)
    yield Channel(client)
    client.close()


@pytest.fixture
def api(approval: Channel, tmp_path: Path) -> FlaskClient:
    config = approval_config(approval, tmp_path, {"alice": TOKEN})
    return create_app({**config, "TESTING": True}).test_client()


@pytest.fixture
def pending_b(victim: Channel) -> str:
    return victim.create(request(B), 60).id


def refused(call: Callable[[], Any]) -> None:
    with pytest.raises(redis.exceptions.NoPermissionError):
        call()


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def escalate_in_thread(escalator: RedisEscalator, req: EscalationRequest) -> Any:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(asyncio.run, escalator.escalate(req, 30))
    pool.shutdown(wait=False)
    return future


def next_inbox_id(admin: redis.Redis) -> str:
    popped = admin.blpop([redis_keys.INBOX], timeout=5)
    assert popped is not None, "no escalation reached the inbox"
    return popped[1].decode().split(" ")[0]


@contextmanager
def rewritten_after_first_read(
    approval: Channel, admin: redis.Redis, escalation_id: str
) -> Iterator[list[str]]:
    """The record rewritten (to a read_file) right after the approval side's first GET of it,
    before the decision script runs; yields the GETs that triggered it."""
    real_get = approval.redis.get
    calls: list[str] = []

    def get_then_rewrite(key: str) -> Any:
        raw = real_get(key)
        if key == redis_keys.record(escalation_id) and not calls:
            calls.append(key)
            admin.set(key, json.dumps({**json.loads(raw), "tool": "read_file"}))
        return raw

    approval.redis.get = get_then_rewrite  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        approval.redis.get = real_get  # type: ignore[method-assign]


# -- the attacks -------------------------------------------------------------------------


def test_a_session_cannot_decide_another_sessions_escalation(
    attacker: Channel, approval: Channel, pending_b: str
) -> None:
    refused(lambda: attacker.decide(pending_b, Verdict.APPROVED, by="alice"))  # the script
    forged = Decision(pending_b, Verdict.APPROVED, "alice", 1.0).to_json()
    refused(lambda: attacker.redis.set(redis_keys.decision(pending_b), forged))
    refused(lambda: attacker.redis.rpush(redis_keys.wake(pending_b), "1"))
    refused(lambda: attacker.redis.get(redis_keys.decision(pending_b)))
    assert approval.decision(pending_b) is None


def test_a_session_cannot_decide_its_own_escalation_either(attacker: Channel) -> None:
    own = attacker.create(request(A), 60)
    refused(lambda: attacker.decide(own.id, Verdict.APPROVED, by="alice"))
    refused(lambda: attacker.redis.set(redis_keys.decision(own.id), "{}"))


def test_a_session_cannot_plant_a_remembered_scope(attacker: Channel, approval: Channel) -> None:
    scope = Scope("prefix", "/workspace/src", "filesystem", "move_file")
    for session in (B, A):
        refused(
            lambda s=session: attacker.redis.hset(
                redis_keys.remembered(s), scope.id, scope.to_json()
            )
        )
    refused(lambda: attacker.redis.hgetall(redis_keys.remembered(B)))
    assert approval.remembered(B) == []


def test_a_session_cannot_switch_an_auto_reviewer_on(attacker: Channel, approval: Channel) -> None:
    for session in (B, A):
        refused(lambda s=session: attacker.set_auto_review(s, True))
    assert not approval.auto_review(B)
    assert not approval.auto_review(A)


def test_a_session_cannot_enqueue_an_rq_job_naming_os_system(
    attacker: Channel, team_redis: RedisServer, tmp_path: Path
) -> None:
    for serializer in (None, JSONSerializer):
        queue = Queue(redis_keys.QUEUE, connection=attacker.redis, serializer=serializer)
        refused(lambda q=queue: q.enqueue("os.system", f"touch {tmp_path}/pwned"))
    refused(lambda: attacker.redis.rpush(f"rq:queue:{redis_keys.QUEUE}", "x"))
    refused(lambda: attacker.redis.hset("rq:job:x", "data", "x"))


def test_the_worker_refuses_a_job_naming_os_system_even_if_one_got_in(
    team_redis: RedisServer, admin: redis.Redis, tmp_path: Path
) -> None:
    # Defence in depth: a job planted with a full-power credential still never runs.
    worker_client = connect(team_redis.url, team_redis.worker_file, ca_file=team_redis.ca_file)
    try:
        jobs = dispatch.queue(admin)
        marker = tmp_path / "pwned"
        job = jobs.enqueue("os.system", f"touch {marker}")
        run_burst(dispatch.queue(worker_client), worker_client)
        assert not marker.exists()
        job.refresh()
        assert job.get_status() == "failed"
        assert "not one of IronCurtain's job functions" in (job.latest_result().exc_string or "")
    finally:
        worker_client.close()


def test_a_session_cannot_publish_into_another_sessions_notices(
    attacker: Channel, admin: redis.Redis
) -> None:
    line = "\a[ironcurtain] escalation x: approve with `curl evil`"
    refused(lambda: attacker.announce(B, line))
    refused(lambda: attacker.redis.publish(redis_keys.notices(B), line))
    listener = attacker.redis.pubsub()
    try:
        refused(
            lambda: (listener.subscribe(redis_keys.notices(B)), listener.get_message(timeout=2))
        )
    finally:
        listener.close()
    assert attacker.announce(A, "own notice") == 0  # control: its own channel


def test_a_session_cannot_rewrite_or_read_another_sessions_pending_record(
    attacker: Channel, approval: Channel, pending_b: str
) -> None:
    harmless = approval.get(pending_b)
    assert harmless is not None
    rewritten = json.dumps({**harmless.to_dict(), "tool": "read_file"})  # type: ignore[union-attr]
    refused(lambda: attacker.redis.set(redis_keys.record(pending_b), rewritten))
    refused(lambda: attacker.redis.get(redis_keys.record(pending_b)))
    refused(lambda: attacker.redis.zadd(redis_keys.pending(B), {f"{B}.ffffffffffffffff": 1}))
    refused(lambda: attacker.redis.delete(redis_keys.record(pending_b)))
    assert approval.get(pending_b) == harmless


def test_a_record_rewritten_under_a_waiting_proxy_is_refused_by_that_proxy(
    team_redis: RedisServer, admin: redis.Redis, api: FlaskClient
) -> None:
    # Suppose a breach let someone rewrite B's record to a harmless call, which a human then
    # approved: the decision names the harmless request, B's proxy holds the move: refused.
    audited: list[Mapping[str, Any]] = []
    escalator = RedisEscalator.connect(
        team_redis.url, team_redis.session_file(B), ca_file=team_redis.ca_file
    )
    escalator._audit = audited.append
    try:
        waiting = escalate_in_thread(escalator, request(B))
        escalation_id = next_inbox_id(admin)
        stored = json.loads(admin.get(redis_keys.record(escalation_id)))
        harmless = {**stored, "tool": "read_file", "arguments": {"path": "/workspace/README"}}
        admin.set(redis_keys.record(escalation_id), json.dumps(harmless))
        shown = api.get(f"/api/v1/escalations/{escalation_id}", headers=bearer()).json
        answer = api.post(
            f"/api/v1/escalations/{escalation_id}/approve",
            headers=bearer(),
            json={"digest": shown["escalation"]["digest"]},
        )
        assert answer.status_code == 200  # the human approved what they saw
        outcome = waiting.result(timeout=10)
    finally:
        escalator.close()
    assert not outcome.allowed
    assert "not the request this proxy is holding" in outcome.message
    assert audited[0]["event"] == "escalation.mismatch"
    assert audited[0]["tool"] == "move_file"


def test_a_record_rewritten_between_reading_and_deciding_is_not_decided(
    approval: Channel, victim: Channel, admin: redis.Redis
) -> None:
    escalation = victim.create(request(B), 60)
    with rewritten_after_first_read(approval, admin, escalation.id):
        ruling = approval.decide(escalation.id, Verdict.APPROVED, by="alice")
    assert ruling.outcome.value == "changed"
    assert approval.decision(escalation.id) is None


def test_an_approval_bound_to_what_was_shown_is_refused_after_the_session_rewrites_it(
    approval: Channel, victim: Channel, api: FlaskClient
) -> None:
    # F5: the human is shown B's move_file; B (its own key: its user may) swaps in a harmless
    # read_file before the click. The approval names the digest shown: nothing is decided.
    escalation = victim.create(request(B), 60)
    shown = api.get(f"/api/v1/escalations/{escalation.id}", headers=bearer()).json
    assert shown["escalation"]["digest"] == escalation.digest()
    stored = json.loads(victim.redis.get(redis_keys.record(escalation.id)))
    harmless = {**stored, "tool": "read_file", "arguments": {"path": "/workspace/README"}}
    victim.redis.set(redis_keys.record(escalation.id), json.dumps(harmless))
    answer = api.post(
        f"/api/v1/escalations/{escalation.id}/approve",
        headers=bearer(),
        json={"digest": shown["escalation"]["digest"]},
    )
    assert answer.status_code == 409
    assert "changed since it was shown" in answer.json["message"]
    assert approval.decision(escalation.id) is None
    assert [e.id for e in approval.pending()] == [escalation.id]  # still waiting for a human
    # Control: a fresh look shows the request as it is now; approving that is recorded.
    again = api.get(f"/api/v1/escalations/{escalation.id}", headers=bearer()).json
    assert again["escalation"]["tool"] == "read_file"
    answer = api.post(
        f"/api/v1/escalations/{escalation.id}/approve",
        headers=bearer(),
        json={"digest": again["escalation"]["digest"]},
    )
    assert answer.status_code == 200
    decision = approval.decision(escalation.id)
    assert decision is not None
    assert decision.request_digest == again["escalation"]["digest"]


def test_an_approval_bound_to_what_was_shown_checks_it_atomically_with_the_decision(
    approval: Channel, victim: Channel, admin: redis.Redis
) -> None:
    # The rewrite lands after decide() read the record (and its digest matched what was
    # shown) and before the script runs: the script compares the very bytes it checked.
    escalation = victim.create(request(B), 60)
    shown = escalation.digest()
    with rewritten_after_first_read(approval, admin, escalation.id) as calls:
        ruling = approval.decide(escalation.id, Verdict.APPROVED, by="alice", shown_digest=shown)
    assert calls
    assert ruling.outcome.value == "changed"
    assert approval.decision(escalation.id) is None
    # Control: unchanged since shown: decided, naming that digest.
    other = victim.create(request(B), 60)
    ruling = approval.decide(other.id, Verdict.APPROVED, by="alice", shown_digest=other.digest())
    assert ruling.outcome.value == "decided"
    assert ruling.decision is not None
    assert ruling.decision.request_digest == other.digest()


@pytest.mark.parametrize(
    "raw", ["{}", "[]", "not json", json.dumps({"id": "x"}), "\xff" * 10, "{" * 5000]
)
def test_a_forged_record_is_shown_invalid_cannot_be_approved_and_breaks_no_page(
    raw: str, attacker: Channel, victim: Channel, api: FlaskClient, pending_b: str
) -> None:
    # Into another session's keys: refused. Into its own: listed as invalid, never decided.
    refused(lambda: attacker.redis.set(redis_keys.record(f"{B}.0123456789abcdef"), raw))
    forged = f"{A}.0123456789abcdef"
    attacker.redis.set(redis_keys.record(forged), raw)
    attacker.redis.zadd(redis_keys.pending(A), {forged: 1.0, "garbage-member": 2.0})
    listed = api.get("/api/v1/escalations", headers=bearer())
    assert listed.status_code == 200
    rows = {e["id"]: e for e in listed.json["escalations"]}
    assert rows[forged]["invalid"] is True
    assert rows[pending_b]["invalid"] is False  # the genuine one is still there
    assert "garbage-member" not in rows
    assert log_in(api, TOKEN).status_code == 302  # a person's browser session
    for path in ("/", f"/escalations/{forged}", "/sessions", "/history"):
        assert api.get(path).status_code == 200, path
    assert api.get(f"/api/v1/escalations/{forged}", headers=bearer()).status_code == 200
    answer = api.post(
        f"/api/v1/escalations/{forged}/approve", headers=bearer(), json={"digest": "0" * 64}
    )
    assert answer.status_code == 422
    assert api.get(f"/api/v1/escalations/{forged}", headers=bearer()).json["decision"] is None


def test_a_session_has_no_admin_reach_and_the_default_user_is_off(
    attacker: Channel, team_redis: RedisServer
) -> None:
    for command in (("ACL", "LIST"), ("ACL", "SETUSER", "x", "on"), ("KEYS", "*"), ("FLUSHALL",),
                    ("CONFIG", "GET", "*"), ("SCAN", "0"), ("EVAL", "return 1", "0")):  # fmt: skip
        refused(lambda c=command: attacker.redis.execute_command(*c))
    anonymous = connect(team_redis.url, ca_file=team_redis.ca_file)  # TLS, but no user
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.ping()
    anonymous.close()


def test_a_removed_session_user_can_do_nothing_and_the_sweep_finds_strays(
    team_redis: RedisServer, admin: redis.Redis
) -> None:
    credential_file = team_redis.session_file("gone0001")
    client = connect(team_redis.url, credential_file, ca_file=team_redis.ca_file)
    assert client.ping()
    users.remove_session_user(admin, "gone0001")
    with pytest.raises(redis.exceptions.RedisError):
        client.ping()  # DELUSER also disconnected it
    client.close()
    assert acl.session_user("gone0001") not in users.session_users(admin)
    team_redis.session_file(A)  # a live session of this machine
    team_redis.session_file("stale001")  # made by machine "test", its project not running
    removed = users.sweep(admin, machine="test", live_projects={f"ic-test-{A}", f"ic-test-{B}"})
    assert acl.session_user("stale001") in removed
    assert acl.session_user(A) not in removed


# -- the controls ------------------------------------------------------------------------


def test_control_a_sessions_own_round_trip_through_the_approval_api_resumes_it(
    team_redis: RedisServer, admin: redis.Redis, api: FlaskClient, approval: Channel
) -> None:
    escalator = RedisEscalator.connect(
        team_redis.url, team_redis.session_file(A), ca_file=team_redis.ca_file
    )
    try:
        waiting = escalate_in_thread(escalator, request(A))
        escalation_id = next_inbox_id(admin)
        assert [e.id for e in approval.pending()] == [escalation_id]
        shown = api.get(f"/api/v1/escalations/{escalation_id}", headers=bearer()).json
        scope_id = shown["choices"][0]["id"]
        answer = api.post(
            f"/api/v1/escalations/{escalation_id}/approve",
            headers=bearer(),
            json={
                "reason": "fine",
                "by": "alice",
                "remember": scope_id,
                "digest": shown["escalation"]["digest"],
            },
        )
        assert answer.status_code == 200
        outcome = waiting.result(timeout=10)
        assert outcome.allowed
        assert outcome.decided_by == "alice"
        # The remembered scope (written by the approval service) is read by the session.
        again = asyncio.run(escalator.escalate(request(A), 30))
        assert again.allowed
        assert (again.decided_by or "").startswith("remembered:")
    finally:
        escalator.close()
    # The worker puts the remembered approval into the history after checking the scope.
    worker_client = connect(team_redis.url, team_redis.worker_file, ca_file=team_redis.ca_file)
    try:
        channel = Channel(worker_client)
        while (entry := admin.lpop(redis_keys.INBOX)) is not None:
            dispatch.handle(channel, dispatch.queue(worker_client), entry, reviewer=False)
        assert [h.decision.by.split(":")[0] for h in channel.history()] == ["remembered", "alice"]
    finally:
        worker_client.close()


def test_control_the_worker_notifies_a_session_with_its_own_user(
    team_redis: RedisServer, admin: redis.Redis, victim: Channel
) -> None:
    listener = victim.redis.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(redis_keys.notices(B))  # the session follows its own notices (as `run` does)
    worker_client = connect(team_redis.url, team_redis.worker_file, ca_file=team_redis.ca_file)
    try:
        escalation = victim.create(request(B), 30)
        entry = admin.blpop([redis_keys.INBOX], timeout=5)
        assert entry is not None
        jobs = dispatch.queue(worker_client)
        channel = Channel(worker_client)
        assert dispatch.handle(channel, jobs, entry[1], reviewer=False) == "notify"
        run_burst(jobs, worker_client)
        message = None
        for _ in range(50):
            message = listener.get_message(timeout=0.1)
            if message:
                break
        assert message is not None
        assert escalation.id in message["data"].decode()
    finally:
        listener.close()
        worker_client.close()


def test_the_worker_may_decide_as_the_reviewer_but_never_remember_or_switch(
    team_redis: RedisServer, victim: Channel, approval: Channel
) -> None:
    worker_client = connect(team_redis.url, team_redis.worker_file, ca_file=team_redis.ca_file)
    try:
        worker = Channel(worker_client)
        first = victim.create(request(B), 60)
        scope = Scope("prefix", "/workspace/src", "filesystem", "move_file", "/workspace/src/")
        refused(lambda: worker.decide(first.id, Verdict.APPROVED, by="x", remember=scope))
        refused(lambda: worker.set_auto_review(B, True))
        refused(lambda: worker_client.execute_command("ACL", "LIST"))
        ruling = worker.decide(first.id, Verdict.APPROVED, by="auto-reviewer", reason="in scope")
        assert ruling.accepted  # control: the auto-reviewer's one power
        assert approval.remembered(B) == []
    finally:
        worker_client.close()


@pytest.mark.parametrize("switched_on", [False, True])
def test_the_workers_decision_names_the_reviewer_and_counts_only_while_it_is_switched_on(
    team_redis: RedisServer, admin: redis.Redis, approval: Channel, switched_on: bool
) -> None:
    """The worker's credential used by hand, not through our script: it cannot write a
    person's decision; what it writes under its own key is the auto-reviewer's whatever the body
    says, and B's proxy takes it only while a human has B's auto-reviewer switched on."""
    audited: list[Mapping[str, Any]] = []
    escalator = RedisEscalator.connect(
        team_redis.url, team_redis.session_file(B), ca_file=team_redis.ca_file
    )
    escalator._audit = audited.append
    worker_client = connect(team_redis.url, team_redis.worker_file, ca_file=team_redis.ca_file)
    try:
        if switched_on:
            approval.set_auto_review(B, True)
        waiting = escalate_in_thread(escalator, request(B))
        escalation_id = next_inbox_id(admin)
        shown = approval.get(escalation_id)
        assert isinstance(shown, Escalation)
        forged = Decision(
            escalation_id, Verdict.APPROVED, "alice", time.time(), "", None, shown.digest()
        ).to_json()
        refused(lambda: worker_client.set(redis_keys.decision(escalation_id), forged))
        refused(lambda: Channel(worker_client).decide(escalation_id, Verdict.APPROVED, by="alice"))
        assert approval.decision(escalation_id) is None
        worker_client.set(redis_keys.review(escalation_id), forged)
        worker_client.rpush(redis_keys.wake(escalation_id), "1")
        outcome = waiting.result(timeout=10)
    finally:
        worker_client.close()
        escalator.close()
    assert outcome.decided_by == "auto-reviewer"
    standing = approval.decision(escalation_id)
    assert standing is not None
    assert standing.by == "auto-reviewer"
    assert outcome.allowed is switched_on
    if not switched_on:
        assert "not switched on for this session" in outcome.message
        assert audited[0]["event"] == "escalation.mismatch"


def test_a_session_cannot_hide_another_sessions_escalations_from_the_listing_or_flood_it(
    attacker: Channel, approval: Channel, pending_b: str, admin: redis.Redis
) -> None:
    """The listing's index of sessions (redis_keys.OPEN) is the admin's alone: a session's
    credential can neither take B out of it, end it, nor add names to it; B's escalation stays
    listed."""
    for attack in (
        lambda: attacker.redis.zrem(redis_keys.OPEN, B),
        lambda: attacker.redis.zadd(redis_keys.OPEN, {B: 1.0}),  # "ended"
        lambda: attacker.redis.zadd(redis_keys.OPEN, {f"fake-{i}": 0 for i in range(100)}),
        lambda: attacker.redis.delete(redis_keys.OPEN),
        lambda: attacker.redis.zrange(redis_keys.OPEN, 0, -1),
    ):
        refused(attack)
    assert [e.id for e in approval.pending()] == [pending_b]  # control: listed from the index
    assert admin.zscore(redis_keys.OPEN, B) == 0


def test_an_ended_sessions_escalations_are_gone_with_its_user_and_it_leaves_the_index(
    victim: Channel, approval: Channel, admin: redis.Redis, pending_b: str
) -> None:
    """Teardown frees what the session held (its Redis budget, budget.py): records, pending
    set, decisions, wake lists, handled markers, remembered scopes. Nobody waits for an ended
    session's decisions; only its registration stays (its id is never given out again)."""
    decided = victim.create(request(B), 60)
    approval.decide(decided.id, Verdict.DENIED, by="alice")
    approval.first_handling(decided.id)
    admin.hset(redis_keys.remembered(B), "s", "{}")
    assert {e.id for e in approval.pending()} == {pending_b}
    users.remove_session_user(admin, B)  # teardown
    assert [k.decode() for k in admin.scan_iter(match=f"{redis_keys.space(B)}*")] == []
    assert approval.pending() == []
    assert approval.decide(pending_b, Verdict.APPROVED, by="alice").outcome.value == "missing"
    assert admin.zscore(redis_keys.OPEN, B) is None  # gone from the index at the first listing
    approval.register(B, worktree="wt", agent="a", task="t")
    users.remove_session_user(admin, B)
    assert admin.exists(redis_keys.session(B)) == 1  # its registration stays
    assert users.used_before(admin, B)


def test_a_pending_key_of_another_type_takes_only_that_session_off_the_listing(
    attacker: Channel, api: FlaskClient, pending_b: str, admin: redis.Redis
) -> None:
    """A pending key of another type (a session's user could once SET it as a string) takes
    that session's escalations off the pages, never the pages off everyone (it answered 503)."""
    attacker.create(request(A), 60)
    refused(lambda: attacker.redis.set(redis_keys.pending(A), "x"))  # its user: ZADD only
    admin.set(redis_keys.pending(A), "x")  # defence in depth: however it got there
    listed = api.get("/api/v1/escalations", headers=bearer())
    assert listed.status_code == 200
    assert [e["id"] for e in listed.json["escalations"]] == [pending_b]  # control: B's is there
    assert api.get("/api/v1/sessions", headers=bearer()).status_code == 200
    assert log_in(api, TOKEN).status_code == 302
    assert api.get("/").status_code == 200


def _deep(raw: dict[str, Any]) -> str:
    nested = "[" * 100_000 + "]" * 100_000
    return json.dumps({**raw, "arguments": {"p": 0}}).replace('"p": 0', f'"p": {nested}')


@pytest.mark.parametrize(
    "forge",
    [
        lambda raw: json.dumps({**raw, "deadline": 1e20}),
        lambda raw: json.dumps({**raw, "deadline": -1e20}),
        lambda raw: json.dumps({**raw, "created_at": -1e20, "deadline": 1.0}),
        lambda raw: json.dumps(raw).replace('"deadline": ', '"deadline": Infinity, "x": '),
        lambda raw: json.dumps(raw)[:-1] + ', "tool": "read_file"}',  # a duplicate key
        _deep,
        lambda raw: json.dumps({**raw, "reason": "r" * 400_000}),
    ],
    ids=["deadline-1e20", "deadline-negative", "created-negative-expired", "infinity",
         "duplicate-key", "nested-100000", "400-kb"],
)  # fmt: skip
def test_a_sessions_own_record_can_make_itself_invalid_but_breaks_no_page_or_history(
    attacker: Channel, api: FlaskClient, pending_b: str, forge: Callable[[dict[str, Any]], str]
) -> None:
    own = attacker.create(request(A), 60)
    raw = json.loads(attacker.redis.get(redis_keys.record(own.id)))
    attacker.redis.set(redis_keys.record(own.id), forge(raw))
    attacker.redis.zadd(redis_keys.pending(A), {own.id: 1e300})  # always on the first page
    listed = api.get("/api/v1/escalations", headers=bearer())
    assert listed.status_code == 200
    rows = {e["id"]: e for e in listed.json["escalations"]}
    assert rows[own.id]["invalid"] is True
    assert rows[pending_b]["invalid"] is False  # control: the genuine one is listed
    assert api.get("/api/v1/history", headers=bearer()).status_code == 200
    assert log_in(api, TOKEN).status_code == 302
    for path in ("/", f"/escalations/{own.id}", "/sessions", "/history"):
        assert api.get(path).status_code == 200, path
    denied = api.post(f"/api/v1/escalations/{own.id}/deny", headers=bearer(), json={})
    assert denied.status_code == 422


def test_a_session_cannot_turn_the_shared_inbox_into_anything_but_a_queue(
    attacker: Channel, victim: Channel, admin: redis.Redis
) -> None:
    """SET, ZADD or EXPIRE on the inbox stopped every session's escalations (the worker's BLPOP
    answered WRONGTYPE); a session may only RPUSH onto it."""
    for attack in (
        lambda: attacker.redis.set(redis_keys.INBOX, "x"),
        lambda: attacker.redis.zadd(redis_keys.INBOX, {"x": 1.0}),
        lambda: attacker.redis.expire(redis_keys.INBOX, 1),
        lambda: attacker.redis.get(redis_keys.INBOX),
        lambda: attacker.redis.blpop([redis_keys.INBOX], 1),
    ):
        refused(attack)
    attacker.redis.rpush(redis_keys.INBOX, f"{A}.0123456789abcdef")  # control: a push goes in
    pending = victim.create(request(B), 60)  # control: B's escalation reaches the inbox
    assert admin.type(redis_keys.INBOX) == b"list"
    assert pending.id.encode() in admin.lrange(redis_keys.INBOX, 0, -1)


def test_a_session_pushing_its_inbox_line_again_gets_one_notice_not_many(
    team_redis: RedisServer, admin: redis.Redis, attacker: Channel
) -> None:
    """The inbox is the session's to push onto: the same line pushed 50 times made 100 jobs
    (notices, webhooks), and a remembered line pushed 300 times 300 history entries, pushing
    every other session's decisions out of the history. Each escalation is handled once."""
    own = attacker.create(request(A), 60)
    for _ in range(50):
        attacker.redis.rpush(redis_keys.INBOX, own.id)
    worker_client = connect(team_redis.url, team_redis.worker_file, ca_file=team_redis.ca_file)
    try:
        channel, jobs = Channel(worker_client), dispatch.queue(worker_client)
        done = []
        while (entry := admin.lpop(redis_keys.INBOX)) is not None:
            done.append(dispatch.handle(channel, jobs, entry, reviewer=False, webhook=True))
        assert done[0] == "notify+webhook"  # control: the first line is handled
        assert set(done[1:]) == {"duplicate"}
        assert len(done) == 51
        assert admin.llen(f"rq:queue:{redis_keys.QUEUE}") == 2
    finally:
        worker_client.close()


def test_a_sessions_huge_records_take_at_most_16_kib_each_in_the_history(
    attacker: Channel, approval: Channel, admin: redis.Redis
) -> None:
    """The history keeps 10,000 decisions: a copy of a 250 KB record in each would be 2.5 GB.
    Control: an ordinary record is kept whole."""
    huge = attacker.create(request(A, arguments={"content": "x" * 250_000}), 60)
    plain = attacker.create(request(A), 60)
    for escalation in (huge, plain):
        assert approval.decide(escalation.id, Verdict.DENIED, by="alice").accepted
    kept = {
        reply[b"id"].decode(): reply[b"escalation"] for _, reply in admin.xrange(redis_keys.HISTORY)
    }
    assert len(kept[huge.id]) <= 16 * 1024
    assert len(admin.get(redis_keys.record(huge.id)) or b"") > 250_000
    assert Escalation.from_json(kept[plain.id]) == plain
    assert [h.escalation.id for h in approval.history(session_id=A)] == [plain.id, huge.id]


def register(admin: redis.Redis, session: str, worktree: str) -> None:
    """As `ironcurtain run` registers a session: with the admin credential."""
    Channel(admin).register(session, worktree=worktree, agent="claude-code", task=f"task {session}")


def test_a_session_claiming_another_sessions_worktree_is_shown_with_its_registered_one(
    attacker: Channel, victim: Channel, admin: redis.Redis, api: FlaskClient
) -> None:
    """A's proxy labels its escalation with B's worktree, agent and task, so that a human would
    approve it as B's: the API, the worktree filter and the pages go by A's registration and show
    the words only as A's claim. A cannot rewrite its registration or B's."""
    register(admin, A, "wt-a")
    register(admin, B, "wt-b")
    for key in (redis_keys.session(A), redis_keys.session(B)):
        for attack in (
            lambda key=key: attacker.redis.hset(key, "worktree", "wt-b"),
            lambda key=key: attacker.redis.set(key, "x"),
            lambda key=key: attacker.redis.delete(key),
            lambda key=key: attacker.redis.hgetall(key),
        ):
            refused(attack)
    forged = attacker.create(request(A, worktree="wt-b", agent="codex", task=f"task {B}"), 60)
    honest = victim.create(request(B, worktree="wt-b", task=f"task {B}"), 60)
    rows = {
        e["id"]: e for e in api.get("/api/v1/escalations", headers=bearer()).json["escalations"]
    }
    detail = api.get(f"/api/v1/escalations/{forged.id}", headers=bearer()).json["escalation"]
    for mine in (rows[forged.id], detail):
        assert (mine["worktree"], mine["agent"], mine["task"]) == (
            "wt-a",
            "claude-code",
            f"task {A}",
        )
        assert mine["claimed"] == {"worktree": "wt-b", "agent": "codex", "task": f"task {B}"}
        labels = mine["shown"]["labels"]
        assert {n for n, label in labels.items() if label["disputed"]} == {
            "worktree",
            "agent",
            "task",
        }
        assert labels["worktree"]["text"] == "wt-a"
        assert labels["worktree"]["claim"] == "wt-b"
    theirs = rows[honest.id]  # control: the honest session's labels, plainly
    assert (theirs["worktree"], theirs["registered"]) == ("wt-b", True)
    assert not any(label["disputed"] for label in theirs["shown"]["labels"].values())

    def listed(worktree: str) -> list[str]:
        query = {"worktree": worktree}
        page = api.get("/api/v1/escalations", query_string=query, headers=bearer()).json
        return [e["id"] for e in page["escalations"]]

    assert listed("wt-b") == [honest.id]  # the filter is the registered worktree
    assert listed("wt-a") == [forged.id]
    assert log_in(api, TOKEN).status_code == 302
    for path in ("/", f"/escalations/{forged.id}"):
        page = api.get(path).text
        assert '<span class="claim">(the session claims "wt-b")</span>' in page
        assert '<span class="registered">wt-a</span>' in page


@pytest.mark.parametrize("kind", ["absent", "string", "list", "fields-missing"])
def test_a_registration_missing_or_of_another_kind_leaves_labels_unverified_and_no_page_broken(
    attacker: Channel, admin: redis.Redis, api: FlaskClient, pending_b: str, kind: str
) -> None:
    """No session can write a registration (above); these stand for a lapsed or damaged one."""
    register(admin, B, "wt-b")
    key = redis_keys.session(A)
    if kind == "string":
        admin.set(key, "wt-b")
    elif kind == "list":
        admin.rpush(key, "wt-b")
    elif kind == "fields-missing":
        admin.hset(key, "worktree", "wt-b")
    own = attacker.create(request(A, worktree="wt-b"), 60)
    listed = api.get("/api/v1/escalations", headers=bearer())
    assert listed.status_code == 200
    rows = {e["id"]: e for e in listed.json["escalations"]}
    assert (rows[own.id]["worktree"], rows[own.id]["registered"]) == ("", False)
    assert rows[own.id]["shown"]["labels"]["worktree"]["claim"] == "wt-b"
    assert rows[pending_b]["worktree"] == "wt-b"  # control: B's registration still reads
    filtered = api.get("/api/v1/escalations", query_string={"worktree": "wt-b"}, headers=bearer())
    assert [e["id"] for e in filtered.json["escalations"]] == [pending_b]
    assert log_in(api, TOKEN).status_code == 302
    for path in ("/", f"/escalations/{own.id}", "/history", "/sessions"):
        assert api.get(path).status_code == 200, path
    assert "unverified: no registration" in api.get(f"/escalations/{own.id}").text


def test_the_worker_reads_registrations_for_the_webhook_and_cannot_write_them(
    team_redis: RedisServer, admin: redis.Redis
) -> None:
    """The webhook job names the registered worktree: the worker's user reads registrations in
    one round (webhook.deliver) and writes none."""
    register(admin, A, "wt-a")
    worker_client = connect(team_redis.url, team_redis.worker_file, ca_file=team_redis.ca_file)
    try:
        found = Channel(worker_client).registrations([A, B])
        assert found == {A: Registration("wt-a", "claude-code", f"task {A}")}
        refused(lambda: worker_client.hset(redis_keys.session(A), "worktree", "wt-b"))
    finally:
        worker_client.close()
