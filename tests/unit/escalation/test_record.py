"""Escalation and decision records round-trip through JSON; anything malformed is a ValueError."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.escalation.record import Decision, Escalation, Invalid, read_record
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


GOOD_ID = "s1.0123456789abcdef"


def _stored(**change: object) -> str:
    escalation = Escalation.from_request(REQUEST, id=GOOD_ID, now=100.0, timeout_s=30)
    return json.dumps({**escalation.to_dict(), **change})


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("{}", "lacks"),  # the record that once gave 500 to everyone
        ("[]", "not a JSON object"),
        ("", "not JSON"),
        ("\xff\xfe", "not JSON"),
        (_stored(id="s1.ffffffffffffffff"), "not the id it is stored under"),
        (_stored(session_id="s2"), "not the session its id names"),
        (_stored(deadline=1.0), "deadline is before"),
        (_stored(deadline="soon"), "not a number"),
        (_stored(arguments=[1]), "arguments is not an object"),
        (_stored(paths="/w/a"), "not a list of strings"),
    ],
)
def test_a_forged_or_malformed_record_reads_as_invalid(raw: str, problem: str) -> None:
    found = read_record(GOOD_ID, raw)
    assert isinstance(found, Invalid)
    assert problem in found.problem
    assert found.session_id == "s1"


def test_a_record_under_its_own_id_reads_as_the_escalation() -> None:
    found = read_record(GOOD_ID, _stored())
    assert isinstance(found, Escalation)
    assert found.id == GOOD_ID


@given(st.binary(max_size=300))
def test_any_bytes_read_as_an_escalation_or_invalid_never_an_error(data: bytes) -> None:
    assert isinstance(read_record(GOOD_ID, data), Escalation | Invalid)


def test_the_digest_binds_what_the_human_sees_and_the_raw_arguments() -> None:
    base = Escalation.from_request(REQUEST, id=GOOD_ID, now=100.0, timeout_s=30)
    changed = [
        replace(base, tool="read_file"),
        replace(base, arguments={}),
        replace(base, arguments_digest="x"),
        replace(base, rule="other"),
        replace(base, session_id="s2"),
        replace(base, id="s1.ffffffffffffffff"),
    ]
    assert len({base.digest(), *(c.digest() for c in changed)}) == len(changed) + 1
    assert replace(base, task="other task", recent_audit=()).digest() == base.digest()


def test_the_history_keeps_a_small_record_whole() -> None:
    escalation = Escalation.from_request(REQUEST, id="s1.0123456789abcdef", now=1.0, timeout_s=30)
    assert escalation.history_json() == escalation.to_json()


@pytest.mark.parametrize(
    "filler",
    ["x" * 200_000, "\u202e" * 40_000, "\U0001f600" * 20_000],  # ASCII, bidi, astral: escaped
)
def test_the_history_keeps_at_most_16_kib_of_a_huge_record_and_says_it_was_cut(
    filler: str,
) -> None:
    """A session that writes 256 KB records would grow the 10,000-entry history to GBs."""
    huge = replace(
        Escalation.from_request(REQUEST, id="s1.0123456789abcdef", now=1.0, timeout_s=30),
        arguments={"content": filler},
        reason=filler,
        task=filler,
        worktree=filler,
        paths=tuple(filler[:4000] for _ in range(50)),
        domains=tuple(filler[:250] for _ in range(50)),
        recent_audit=tuple(filler[:4000] for _ in range(20)),
    )
    kept = huge.history_json()
    assert len(kept.encode()) <= 16 * 1024
    back = Escalation.from_json(kept)  # still a record the history page reads
    assert (back.id, back.session_id, back.created_at) == (huge.id, huge.session_id, 1.0)
    assert "cut: the record was" in back.arguments["(cut)"]
    assert back.recent_audit == ()
