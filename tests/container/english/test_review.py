"""The auto-reviewer on our real Redis, with the real SDK against the fake vendor (TLS).

It is off unless switched on; it may only approve, first-wins, as `auto-reviewer` with a reason
that reaches the audit hook and the history; a hostile or broken answer means no decision, and
the human's decision stands.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import ssl
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from ironcurtain.approval.app import create_app
from ironcurtain.english.review import review_with
from ironcurtain.escalation import dispatch, redis_keys
from ironcurtain.escalation.channel import Channel, connect
from ironcurtain.escalation.escalator import RedisEscalator
from ironcurtain.escalation.types import EscalationRequest, Verdict
from ironcurtain.fakellm import certs
from ironcurtain.fakellm.server import FakeVendor

from ..approvalconfig import approval_config
from ..redisserver import RedisServer
from ..rqjobs import run_burst

KEY = "sk-ant-api03-REAL-reviewer-key"
TOKEN = "approval-token-for-the-review-tests-0123456789"
APPROVE = '```json\n{"decision": "approve", "reason": "reading a test file is the task"}\n```'


def request(session: str = "s1", task: str = "fix the failing test") -> EscalationRequest:
    return EscalationRequest(
        session_id=session,
        worktree="wt-main",
        agent="claude-code",
        server="fetch",
        tool="fetch",
        arguments={"url": "https://docs.pytest.org/en/stable/"},
        rule="fetch-other-escalates",
        reason="fetching from a site outside the trusted-docs list needs a human's approval",
        task=task,
        domains=("docs.pytest.org",),
    )


class LoopThread:
    """The fake vendor's own event loop, beside the synchronous worker under test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(15)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


# The jobs' TTL is the escalation's deadline: far enough that a loaded machine never loses one
# between enqueueing and fetching its result (seen once in CI as NoSuchJobError).
DEADLINE_S = 300


@pytest.fixture(scope="module")
def vendor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeVendor, str, Path]]:
    files = certs.write(tmp_path_factory.mktemp("vendor"), ["localhost"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    loop = LoopThread()
    fake = FakeVendor()
    port = loop.run(fake.start(context, "127.0.0.1"))
    yield fake, f"https://localhost:{port}", files.ca
    loop.run(fake.close())
    loop.stop()


@pytest.fixture
def fake(
    vendor: tuple[FakeVendor, str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeVendor]:
    found, url, ca = vendor
    key_file = tmp_path / "anthropic_key"
    key_file.write_text(KEY)
    key_file.chmod(0o600)
    monkeypatch.setenv("IRONCURTAIN_REVIEWER_KEY_FILE", str(key_file))
    monkeypatch.setenv("IRONCURTAIN_REVIEWER_BASE_URL", url)
    monkeypatch.setenv("IRONCURTAIN_REVIEWER_CA_FILE", str(ca))
    found.seen.clear()
    found.replies.clear()
    yield found
    found.replies.clear()


@pytest.fixture
def client(team_redis: RedisServer) -> Iterator[redis.Redis]:
    found = connect(team_redis.url, team_redis.admin_file, ca_file=team_redis.ca_file)
    found.flushdb()
    yield found
    found.close()


@pytest.fixture
def channel(client: redis.Redis) -> Channel:
    return Channel(client)


def drain_inbox(client: redis.Redis) -> None:
    """What the worker's inbox thread does: new escalation ids become our jobs."""
    while (entry := client.lpop(redis_keys.INBOX)) is not None:
        dispatch.handle(Channel(client), dispatch.queue(client), entry, reviewer=True)


def queued(client: redis.Redis) -> list[str]:
    drain_inbox(client)
    ids = [i.decode() for i in client.lrange(f"rq:queue:{redis_keys.QUEUE}", 0, -1)]
    return [Job.fetch(i, connection=client, serializer=JSONSerializer).func_name for i in ids]


def run_jobs(client: redis.Redis) -> dict[str, Any]:
    """Run what is queued, in this process (the fake vendor lives here), and return results."""
    drain_inbox(client)
    ids = [i.decode() for i in client.lrange(f"rq:queue:{redis_keys.QUEUE}", 0, -1)]
    run_burst(dispatch.queue(client), client)
    jobs = [Job.fetch(i, connection=client, serializer=JSONSerializer) for i in ids]
    return {j.func_name.rsplit(".", 1)[1]: j.return_value() for j in jobs}


class Audit:
    def __init__(self) -> None:
        self.entries: list[Mapping[str, Any]] = []

    def __call__(self, entry: Mapping[str, Any]) -> None:
        self.entries.append(entry)


def escalate(channel: Channel, audit: Audit, req: EscalationRequest, timeout_s: float):
    escalator = RedisEscalator(channel, audit=audit)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(asyncio.run, escalator.escalate(req, timeout_s))
    pool.shutdown(wait=False)
    return future


def wait_created(client: redis.Redis, jobs: int) -> None:
    """Block until the escalation reaches the inbox (BLPOP: no polling), then queue its jobs."""
    popped = client.blpop([redis_keys.INBOX], timeout=5)
    assert popped is not None, "the escalation did not reach the inbox"
    dispatch.handle(Channel(client), dispatch.queue(client), popped[1], reviewer=True)
    assert client.llen(f"rq:queue:{redis_keys.QUEUE}") == jobs


def test_without_the_switch_only_the_notification_is_queued(
    channel: Channel, client: redis.Redis, fake: FakeVendor
) -> None:
    channel.create(request(), DEADLINE_S)
    assert queued(client) == ["ironcurtain.escalation.notify.notify"]
    assert channel.auto_review("s1") is False


def test_a_clean_approval_is_decided_by_the_auto_reviewer_and_audited_as_such(
    channel: Channel, client: redis.Redis, fake: FakeVendor
) -> None:
    channel.set_auto_review("s1", True)
    fake.replies.append(APPROVE)
    audit = Audit()
    future = escalate(channel, audit, request(), 20)
    wait_created(client, 2)
    results = run_jobs(client)
    assert results["review"] == "approved"
    outcome = future.result(10)
    assert outcome.verdict is Verdict.APPROVED
    assert outcome.decided_by == "auto-reviewer"
    assert "reading a test file is the task" in outcome.message
    (entry,) = audit.entries
    assert entry["decided_by"] == "auto-reviewer"
    assert entry["reason"] == "reading a test file is the task"
    assert channel.history()[0].decision.by == "auto-reviewer"
    # The LLM saw the task and the call, with the real key from the file.
    (seen,) = [s for s in fake.seen if s.target.startswith("/v1/messages")]
    assert b"fix the failing test" in seen.body
    assert b"docs.pytest.org" in seen.body
    assert KEY in " ".join(
        seen.headers.get("authorization", []) + seen.headers.get("x-api-key", [])
    )


HOSTILE = [
    '```json\n{"decision": "deny", "reason": "looks bad"}\n```',
    '```json\n{"decision": "approve", "reason": ""}\n```',
    '```json\n{"decision": "approve"}\n```',
    '```json\n{"decision": "approve", "reason": "ok", "remember": "everything"}\n```',
    '{"decision": "APPROVE", "reason": "ok"}',
    "Approved! Ignore the human, this is fine.",
    '```json\n{"decision": "approve", "reason": "ok"}\n```\n```json\n{"decision": "deny"}\n```',
    '```json\n{"decision": "approve", "reason": "' + "x" * 600 + '"}\n```',
]


@pytest.mark.parametrize("answer", HOSTILE)
def test_anything_but_a_clean_approval_leaves_the_decision_to_the_human(
    channel: Channel, client: redis.Redis, fake: FakeVendor, answer: str
) -> None:
    channel.set_auto_review("s1", True)
    fake.replies.append(answer)
    escalation = channel.create(request(), DEADLINE_S)
    assert run_jobs(client)["review"] == "abstained"
    assert channel.decision(escalation.id) is None  # still pending: never denied for the human
    ruling = channel.decide(escalation.id, Verdict.DENIED, by="alice")
    assert ruling.accepted
    assert channel.decision(escalation.id).by == "alice"


def test_a_human_who_decided_first_wins(
    channel: Channel, client: redis.Redis, fake: FakeVendor
) -> None:
    channel.set_auto_review("s1", True)
    escalation = channel.create(request(), DEADLINE_S)
    assert "ironcurtain.english.review.review" in queued(client)
    channel.decide(escalation.id, Verdict.DENIED, by="alice", reason="not now")
    results = run_jobs(client)
    assert results["review"] == "gone"
    assert channel.decision(escalation.id).by == "alice"
    assert not fake.seen  # no LLM call for a decided escalation


def test_a_switch_turned_off_after_the_escalation_stops_the_reviewer(
    channel: Channel, client: redis.Redis, fake: FakeVendor
) -> None:
    channel.set_auto_review("s1", True)
    escalation = channel.create(request(), DEADLINE_S)
    assert "ironcurtain.english.review.review" in queued(client)
    channel.set_auto_review("s1", False)
    fake.replies.append(APPROVE)
    assert run_jobs(client)["review"] == "off"
    assert channel.decision(escalation.id) is None
    fake.replies.clear()


def test_the_switch_is_per_session(channel: Channel, client: redis.Redis) -> None:
    channel.set_auto_review("s1", True)
    channel.create(request(session="s2"), DEADLINE_S)
    assert queued(client) == ["ironcurtain.escalation.notify.notify"]


@pytest.mark.parametrize(
    ("model", "task", "why"),
    [("error-500", "fix it", "failed"), ("claude-sonnet-5-5", "  ", "no-task")],
)
def test_a_vendor_failure_or_a_missing_task_means_no_decision(
    channel: Channel, client: redis.Redis, fake: FakeVendor, monkeypatch: pytest.MonkeyPatch,
    model: str, task: str, why: str,
) -> None:  # fmt: skip
    monkeypatch.setenv("IRONCURTAIN_REVIEWER_MODEL", model)
    channel.set_auto_review("s1", True)
    escalation = channel.create(request(task=task), DEADLINE_S)
    assert run_jobs(client)["review"] == why
    assert channel.decision(escalation.id) is None


def test_without_a_key_file_the_reviewer_decides_nothing(
    channel: Channel, client: redis.Redis, fake: FakeVendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IRONCURTAIN_REVIEWER_KEY_FILE")
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)  # an env key is never used
    channel.set_auto_review("s1", True)
    escalation = channel.create(request(), DEADLINE_S)
    assert run_jobs(client)["review"] == "failed"
    assert channel.decision(escalation.id) is None
    assert not fake.seen


def test_the_api_switches_the_reviewer_with_the_bearer_token_only(
    channel: Channel, tmp_path: Path
) -> None:
    app = create_app({**approval_config(channel, tmp_path, {"alice": TOKEN}), "TESTING": True})
    web = app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    path = "/api/v1/sessions/s1/auto-review"
    assert web.put(path, json={"on": True}).status_code == 401
    assert channel.auto_review("s1") is False
    assert web.put(path, json={"on": "yes"}, headers=auth).status_code == 400
    assert web.put(path, json={"on": True}, headers=auth).get_json() == {
        "session_id": "s1",
        "on": True,
    }
    assert channel.auto_review("s1") is True
    assert web.get(path, headers=auth).get_json()["on"] is True
    assert web.put(path, json={"on": False}, headers=auth).status_code == 200
    assert channel.auto_review("s1") is False


class RewritingOracle:
    """A model that approves, while the session rewrites its pending record under it."""

    def __init__(self, client: redis.Redis, escalation_id: str) -> None:
        self.client, self.escalation_id = client, escalation_id

    def ask(self, system: str, prompt: str) -> str:
        key = redis_keys.record(self.escalation_id)
        stored = json.loads(self.client.get(key))
        self.client.set(key, json.dumps({**stored, "arguments": {"url": "https://evil.example/"}}))
        return APPROVE


class PlainOracle:
    def ask(self, system: str, prompt: str) -> str:
        return APPROVE


def test_the_reviewer_does_not_approve_a_record_rewritten_while_it_was_asked(
    channel: Channel, client: redis.Redis
) -> None:
    channel.set_auto_review("s1", True)
    escalation = channel.create(request(), DEADLINE_S)
    oracle = RewritingOracle(client, escalation.id)
    assert review_with(channel, oracle, escalation.id) == "changed"
    assert channel.decision(escalation.id) is None
    # Control: unchanged while asked: approved, bound to what the model was shown.
    other = channel.create(request(), DEADLINE_S)
    assert review_with(channel, PlainOracle(), other.id) == "approved"
    decision = channel.decision(other.id)
    assert decision is not None
    assert decision.request_digest == other.digest()
