"""Escalation and decision records round-trip through JSON; anything malformed is a ValueError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.escalation.record import Decision, Escalation
from ironcurtain.escalation.remember import Scope
from ironcurtain.escalation.types import EscalationRequest, Verdict

REQUEST = EscalationRequest(
    session_id="s1",
    worktree="wt",
    agent="claude-code",
    server="fs",
    tool="write_file",
    arguments={"path": "/w/a", "content": "<script>alert(1)</script>"},
    rule="r1",
    reason="needs a human",
    task="fix it",
    paths=("/w/a",),
    recent_audit=("line 1",),
)


def test_an_escalation_round_trips_through_json():
    escalation = Escalation.from_request(REQUEST, id="abc", now=100.0, timeout_s=30)
    assert escalation.deadline == 130.0
    assert Escalation.from_json(escalation.to_json()) == escalation


def test_a_decision_round_trips_with_its_remembered_scope():
    decision = Decision("abc", Verdict.APPROVED, "alice", 5.0, "ok", Scope("exact", "d", "fs", "t"))
    assert Decision.from_json(decision.to_json()) == decision


@pytest.mark.parametrize(
    "text",
    ["[]", '{"id": 1}', "not json", '{"escalation_id":"a","verdict":"maybe","by":"x","at":1}'],
)
def test_malformed_records_are_refused(text):
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError says "malformed"
        Decision.from_json(text)
    with pytest.raises(ValueError):  # noqa: PT011
        Escalation.from_json(text)


@given(st.binary())
def test_parsing_any_bytes_gives_a_record_or_a_value_error(data):
    for kind in (Escalation, Decision):
        with contextlib.suppress(ValueError):
            kind.from_json(data)
