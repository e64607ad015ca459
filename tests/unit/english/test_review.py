"""The auto-reviewer's reading of an answer: only a clean approval with a reason counts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.english.review import Approval, parse

APPROVALS = [
    ('```json\n{"decision": "approve", "reason": "the task is to fix tests"}\n```',
     "the task is to fix tests"),
    ('{"decision": "approve", "reason": "in scope:\\n  reading the docs"}',
     "in scope: reading the docs"),
]  # fmt: skip
NO_DECISION = [
    '{"decision": "deny", "reason": "never"}',
    '{"decision": "abstain", "reason": "not sure"}',
    '{"decision": "approve", "reason": ""}',
    '{"decision": "approve", "reason": "   "}',
    '{"decision": "approve", "reason": 1}',
    '{"decision": "approve"}',
    '{"decision": "approve", "reason": "ok", "scope": "all"}',
    '{"decision": "Approve", "reason": "ok"}',
    '["approve", "ok"]',
    "approve",
    "",
    '{"decision": "approve", "reason": "' + "y" * 501 + '"}',
    '```json\n{"decision": "approve", "reason": "a"}\n```\n```json\n{}\n```',
]


@pytest.mark.parametrize(("text", "reason"), APPROVALS)
def test_a_clean_approval_with_a_reason_is_an_approval(text: str, reason: str) -> None:
    assert parse(text) == Approval(reason)


@pytest.mark.parametrize("text", NO_DECISION)
def test_anything_else_is_no_decision(text: str) -> None:
    assert parse(text) is None


@given(st.text(max_size=200))
def test_parsing_never_raises_and_never_denies(text: str) -> None:
    result = parse(text)
    assert result is None or isinstance(result, Approval)
