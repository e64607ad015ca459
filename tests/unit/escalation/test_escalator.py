"""RedisEscalator refusals that need no Redis, and what the agent and the human are told (pure)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from ironcurtain.escalation.channel import Channel
from ironcurtain.escalation.escalator import RedisEscalator, audit_entry, message
from ironcurtain.escalation.notify import notice, webhook_body
from ironcurtain.escalation.record import Decision, Escalation
from ironcurtain.escalation.types import EscalationRequest, Verdict
from ironcurtain.shared.pki import TeamTLS

REQUEST = EscalationRequest(
    session_id="s1",
    worktree="wt",
    agent="claude-code",
    server="fs",
    tool="write_file",
    arguments={"path": "/w/a", "token": "sk-redacted"},
    rule="r1",
    reason="needs a human",
)
ESCALATION = Escalation.from_request(REQUEST, id="e1", now=100.0, timeout_s=30)


def never_connects() -> Channel:
    return Channel(redis.Redis(host="127.0.0.1", port=1))


@pytest.mark.parametrize("timeout_s", [0, -1, float("nan"), float("inf")])
def test_a_nonsense_timeout_is_denied_at_once(timeout_s: float) -> None:
    outcome = asyncio.run(RedisEscalator(never_connects()).escalate(REQUEST, timeout_s))
    assert outcome.verdict is Verdict.UNAVAILABLE
    assert "timeout" in outcome.message


def test_with_every_slot_taken_a_new_escalation_is_denied_at_once() -> None:
    outcome = asyncio.run(RedisEscalator(never_connects(), max_waiting=0).escalate(REQUEST, 30))
    assert outcome.verdict is Verdict.UNAVAILABLE
    assert "too many" in outcome.message


@pytest.mark.parametrize(
    ("verdict", "says"),
    [
        (Verdict.APPROVED, "approved by alice: ok"),
        (Verdict.DENIED, "denied by alice: ok"),
        (Verdict.EXPIRED, "timed out"),
    ],
)
def test_the_agent_is_told_who_decided_or_that_it_timed_out(verdict: Verdict, says: str) -> None:
    decision = Decision("e1", verdict, "alice", 101.0, "ok")
    assert says in message(ESCALATION, decision, 30)


def test_the_audit_entry_is_flat_json_with_who_when_and_why() -> None:
    entry = audit_entry(ESCALATION, Decision("e1", Verdict.DENIED, "bob", 120.0, "no"))
    assert json.loads(json.dumps(entry)) == entry
    assert (entry["verdict"], entry["decided_by"], entry["reason"]) == ("denied", "bob", "no")


def test_the_terminal_line_rings_and_names_the_way_to_decide() -> None:
    line = notice(ESCALATION, "http://127.0.0.1:8470/")
    assert line.startswith("\a")
    assert "http://127.0.0.1:8470/escalations/e1" in line
    assert "ironcurtain approve e1" in line
    assert "ironcurtain deny e1" in line


def test_the_terminal_line_names_the_paths_but_no_other_argument_values() -> None:
    many = ("/w/a", "/w/b", "/w/c", "/w/" + "x" * 200)
    line = notice(replace(ESCALATION, paths=many), "http://127.0.0.1:8470")
    assert "fs__write_file needs approval on /w/a, /w/b, /w/c, +1 more (rule r1" in line
    assert "sk-redacted" not in line
    long = notice(replace(ESCALATION, paths=("/w/" + "x" * 200,)), "http://127.0.0.1:8470")
    assert "x" * 200 not in long
    assert "\u2026" in long


def test_the_webhook_carries_no_arguments() -> None:
    body = json.loads(webhook_body(ESCALATION, "http://127.0.0.1:8470", registration=None))
    assert "arguments" not in body
    assert "sk-redacted" not in json.dumps(body)


def test_the_proxy_loads_no_redis_client_until_its_first_escalation(tmp_path: Path) -> None:
    # Most sessions never escalate: Redis and RQ would cost every MCP proxy's start ~65 ms CPU.
    secret = tmp_path / "redis_password"
    secret.write_text(f"ironcurtain-session-s {'a' * 64}\n")
    ca = tmp_path / "tls"
    TeamTLS(ca).ensure([], say=lambda _: None)
    probe = (
        "import asyncio, sys\n"
        "from ironcurtain.escalation.escalator import RedisEscalator\n"
        "from ironcurtain.escalation.types import EscalationRequest\n"
        f"e = RedisEscalator.connect('rediss://127.0.0.1:1/0', {str(secret)!r},\n"
        f"    ca_file={str(ca / 'ca.pem')!r})\n"
        "before = sorted(m for m in ('redis', 'rq') if m in sys.modules)\n"
        "r = EscalationRequest(session_id='s', worktree='w', agent='a', server='fs', tool='t',\n"
        "    arguments={}, rule='r', reason='why')\n"
        "outcome = asyncio.run(e.escalate(r, 5))\n"
        "e.close()\n"
        "print(before, outcome.verdict.value, 'redis' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["[]", "unavailable", "True"]


def test_a_missing_credential_file_or_a_bad_url_stops_the_proxy_at_start(tmp_path: Path) -> None:
    TeamTLS(tmp_path / "tls").ensure([], say=lambda _: None)
    ca = tmp_path / "tls" / "ca.pem"
    with pytest.raises(FileNotFoundError):
        RedisEscalator.connect("rediss://redis:6379/0", tmp_path / "missing", ca_file=ca)
    (tmp_path / "pw").write_text("just-a-password-without-a-user")
    with pytest.raises(ValueError, match="USER PASSWORD"):
        RedisEscalator.connect("rediss://redis:6379/0", tmp_path / "pw", ca_file=ca)
    (tmp_path / "pw").write_text(f"ironcurtain-session-s {'a' * 64}")
    with pytest.raises(ValueError, match="not a rediss:// URL"):
        RedisEscalator.connect("http://redis:6379/0", tmp_path / "pw", ca_file=ca)
    with pytest.raises(ValueError, match="plaintext Redis is refused"):
        RedisEscalator.connect("redis://redis:6379/0", tmp_path / "pw", ca_file=ca)
    with pytest.raises(FileNotFoundError):  # no team CA: no start (never an unchecked TLS)
        RedisEscalator.connect("rediss://redis:6379/0", tmp_path / "pw", ca_file=tmp_path / "no")


class FakeChannel:
    """The session's side of the channel, answering with a given decision (no Redis)."""

    def __init__(self, answer) -> None:  # answer: Escalation -> Decision
        self.answer = answer
        self.redis = redis.Redis(host="127.0.0.1", port=1)  # closed, never used

    def remembered(self, session_id: str) -> list:
        return []

    def create(self, request: EscalationRequest, timeout_s: float) -> Escalation:
        return Escalation.from_request(request, id="s1.0123456789abcdef", now=100.0, timeout_s=30)

    def wait(self, escalation: Escalation) -> Decision:
        return self.answer(escalation)


def _escalate(answer) -> tuple:
    audited: list = []
    escalator = RedisEscalator(FakeChannel(answer), audit=audited.append)  # type: ignore[arg-type]
    try:
        return asyncio.run(escalator.escalate(REQUEST, 30)), audited
    finally:
        escalator.close()


def test_an_approval_naming_the_request_the_proxy_holds_allows() -> None:
    def answer(e: Escalation) -> Decision:
        return Decision(e.id, Verdict.APPROVED, "alice", 101.0, request_digest=e.digest())

    outcome, audited = _escalate(answer)
    assert outcome.allowed
    assert audited[0]["event"] == "escalation.decided"
    assert len(audited[0]["request_digest"]) == 64


@pytest.mark.parametrize(
    "change",
    [
        {"tool": "read_file"},  # the record rewritten to something harmless, then approved
        {"arguments": {"path": "/w/harmless"}},
        {"arguments_digest": "0" * 64},
        {"session_id": "s2"},
        {"rule": "other-rule"},
        {"paths": ("/w/other",)},
        {"deadline": 10_000.0},
    ],
)
def test_an_approval_of_another_request_is_refused_and_audited(change: dict) -> None:
    def answer(e: Escalation) -> Decision:
        seen = replace(e, **change)  # what the human was shown
        return Decision(e.id, Verdict.APPROVED, "alice", 101.0, request_digest=seen.digest())

    outcome, audited = _escalate(answer)
    assert not outcome.allowed
    assert outcome.verdict is Verdict.DENIED
    assert "not the request this proxy is holding" in outcome.message
    assert audited[0]["event"] == "escalation.mismatch"
    assert audited[0]["verdict"] == "denied"


@pytest.mark.parametrize("digest", ["", "f" * 64])
def test_an_approval_without_the_right_digest_is_refused(digest: str) -> None:
    def answer(e: Escalation) -> Decision:
        return Decision(e.id, Verdict.APPROVED, "alice", 101.0, request_digest=digest)

    outcome, _ = _escalate(answer)
    assert not outcome.allowed


def test_an_approval_naming_another_escalation_is_refused() -> None:
    def answer(e: Escalation) -> Decision:
        return Decision(
            "s1.ffffffffffffffff", Verdict.APPROVED, "alice", 101.0, request_digest=e.digest()
        )

    outcome, audited = _escalate(answer)
    assert not outcome.allowed
    assert audited[0]["refused"] == "the decision names another escalation"
