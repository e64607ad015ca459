import asyncio

from ironcurtain.escalation.types import EscalationRequest, UnavailableEscalator, Verdict


def _request() -> EscalationRequest:
    return EscalationRequest(
        session_id="s1",
        worktree="wt",
        agent="claude-code",
        server="filesystem",
        tool="delete_file",
        arguments={"path": "/workspace/x"},
        rule="deletes-escalate",
        reason="deleting files needs a human",
    )


def test_without_a_channel_an_escalation_is_denied_at_once_saying_why() -> None:
    outcome = asyncio.run(UnavailableEscalator().escalate(_request(), timeout_s=30))
    assert outcome.verdict is Verdict.UNAVAILABLE
    assert not outcome.allowed
    assert "filesystem__delete_file" in outcome.message
    assert "no escalation channel" in outcome.message
