"""Summary counts come from the audit logs' own lines."""

from __future__ import annotations

import json
from dataclasses import replace

from ironcurtain.session.summary import (
    LlmCounts,
    Summary,
    ToolCounts,
    json_lines,
    llm_counts,
    tool_counts,
)

MCP = [
    {"event": "start"},
    {"event": "decision", "effect": "allow"},
    {"event": "outcome", "ok": True},
    {"event": "decision", "effect": "deny"},
    {"event": "decision", "effect": "escalate"},
    {"event": "escalation", "verdict": "approved"},
    {"event": "decision", "effect": "escalate"},
    {"event": "escalation", "verdict": "expired"},
]
MITM = [
    {"time": 1.0, "event": "connect", "decision": "refuse", "rule": "tls"},
    {"time": 5.0, "event": "request", "decision": "allow"},
    {"time": 6.0, "event": "response", "decision": "done", "input_tokens": 12,
     "output_tokens": 34, "cost_usd": 0.0005},
    {"time": 7.0, "event": "request", "decision": "refuse", "rule": "key"},
]  # fmt: skip


def test_tool_calls_are_counted_by_decision_and_escalation_verdict() -> None:
    assert tool_counts(MCP) == ToolCounts(
        total=4, allowed=1, denied=1, escalated=2, approved=1, not_approved=1
    )


def test_llm_usage_is_summed_and_lines_before_the_agent_started_are_left_out() -> None:
    assert llm_counts(MITM) == LlmCounts(1, 2, 12, 34, 0.0005)
    assert llm_counts(MITM, since=2.0) == LlmCounts(1, 1, 12, 34, 0.0005)


def test_lines_that_are_not_json_objects_are_skipped() -> None:
    text = '{"a": 1}\nnot json\n[1]\n{"b": 2}\n'
    assert json_lines(text) == [{"a": 1}, {"b": 2}]


def test_the_summary_renders_and_round_trips_as_json() -> None:
    summary = Summary(
        session="s1", project="ic-x-s1", agent="scripted", task="t", outcome="ok",
        duration_s=3.2, tools=tool_counts(MCP), llm=llm_counts(MITM),
        audit={"mcp": "/a/mcp.jsonl"}, answer="done",
    )  # fmt: skip
    doc = json.loads(summary.to_json())
    assert doc["tools"]["escalated"] == 2
    assert doc["llm"]["input_tokens"] == 12
    shown = summary.render()
    assert "tool calls: 4 (allowed 1, denied 1, escalated 2" in shown
    assert "/a/mcp.jsonl" in shown


def test_the_summary_says_which_runtime_the_agent_ran_under() -> None:
    summary = Summary(
        session="s1", project="ic-x-s1", agent="scripted", task="t", outcome="ok",
        duration_s=3.2, tools=tool_counts(MCP), llm=llm_counts(MITM),
        audit={}, runtime="runsc", room_runtime="runc",
    )  # fmt: skip
    assert json.loads(summary.to_json())["runtime"] == "runsc"
    assert "runtime: agent under runsc, rooms under runc" in summary.render()


def test_a_cost_estimated_with_a_fallback_price_is_named_in_the_summary() -> None:
    lines = [
        {"event": "response", "provider": "openai", "model": "gpt-9", "priced_as": "*",
         "input_tokens": 5, "output_tokens": 1, "cost_usd": 0.1},
        {"event": "response", "provider": "openai", "model": "gpt-4o", "priced_as": "gpt-4o*",
         "input_tokens": 5, "output_tokens": 1},
        # free calls (no tokens) priced by "*" are not a guess worth naming
        {"event": "response", "provider": "claude-platform", "priced_as": "*"},
    ]  # fmt: skip
    counts = llm_counts(lines)
    assert counts.unpriced == ("openai:gpt-9",)
    summary = Summary(
        session="s1", project="p", agent="codex", task="t", outcome="ok", duration_s=1.0,
        tools=tool_counts([]), llm=counts, audit={},
    )  # fmt: skip
    assert "no price known for openai:gpt-9" in summary.render()
    assert json.loads(summary.to_json())["llm"]["unpriced"] == ["openai:gpt-9"]
    control = replace(summary, llm=llm_counts(lines[1:]))
    assert "no price known" not in control.render()
