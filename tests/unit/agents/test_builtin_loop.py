"""The builtin agent's loop with a fake model and a fake executor: what goes back to the model,
when it stops, and which budget stopped it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from ironcurtain.agents.builtin_budget import Budgets
from ironcurtain.agents.builtin_loop import TOOL_NAME, Loop, ModelError, Reply, ToolUse, render
from ironcurtain.agents.builtin_sandbox import RunResult


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def code_turn(code: str, n: int = 0, tokens: int = 10) -> Reply:
    use = ToolUse(f"toolu_{n}", TOOL_NAME, {"code": code})
    content = ({"type": "tool_use", "id": use.id, "name": use.name, "input": dict(use.input)},)
    return Reply("", (use,), "tool_use", tokens, tokens, "claude-sonnet-4-5", content)


def text_turn(text: str) -> Reply:
    return Reply(text, (), "end_turn", 5, 5, "claude-sonnet-4-5", ({"type": "text", "text": text},))


class FakeModel:
    """Plays replies in order; records what it was asked (a deep copy of the messages)."""

    def __init__(self, replies: list[Reply | Exception], clock: Clock, step_s: float = 1.0):
        self.replies = replies
        self.clock = clock
        self.step_s = step_s
        self.asked: list[list[dict[str, Any]]] = []
        self.timeouts: list[float | None] = []

    def ask(
        self,
        system: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        timeout_s: float | None,
    ) -> Reply:
        assert [t["name"] for t in tools] == [TOOL_NAME]
        self.asked.append([dict(m) for m in messages])
        self.timeouts.append(timeout_s)
        self.clock.now += self.step_s
        reply = self.replies.pop(0) if self.replies else text_turn("(out of replies)")
        if isinstance(reply, BaseException):  # KeyboardInterrupt too (the REPL's tests)
            raise reply
        return reply


class FakeExecutor:
    def __init__(self, clock: Clock, result: RunResult | None = None, run_s: float = 1.0):
        self.clock = clock
        self.result = result or RunResult(0, "out\n", "")
        self.run_s = run_s
        self.ran: list[tuple[str, float | None]] = []

    def __call__(self, code: str, deadline: float | None) -> RunResult:
        self.ran.append((code, deadline))
        self.clock.now += self.run_s
        return self.result


def make(replies: list[Reply | Exception], budgets: Budgets = Budgets(), **kw: Any) -> tuple:  # noqa: B008
    clock = Clock()
    model = FakeModel(replies, clock)
    execute = FakeExecutor(clock, **kw)
    events: list[dict[str, Any]] = []
    loop = Loop(model, execute, "SYSTEM", budgets, lambda m, i, o: (i + o) / 100, clock,
                lambda **e: events.append(e))  # fmt: skip
    return loop, model, execute, events


def test_code_runs_and_its_output_goes_back_then_the_text_turn_is_the_answer() -> None:
    loop, model, execute, events = make([code_turn("print(1)"), text_turn("all done")])
    outcome = loop.run("the task")
    assert (outcome.kind, outcome.text, outcome.budget) == ("answer", "all done", None)
    assert [c for c, _ in execute.ran] == ["print(1)"]
    second = model.asked[1]
    assert second[0] == {"role": "user", "content": [{"type": "text", "text": "the task"}]}
    assert second[1]["role"] == "assistant"
    assert second[1]["content"][0]["type"] == "tool_use"
    [result] = second[2]["content"]
    assert result == {
        "type": "tool_result",
        "tool_use_id": "toolu_0",
        "content": "exit code: 0\n--- stdout ---\nout\n",
        "is_error": False,
    }
    assert [e["step"] for e in events] == ["llm", "code", "result", "llm", "answer"]
    assert (outcome.spent.steps, outcome.spent.tokens) == (2, 30)
    assert outcome.spent.cost_usd == pytest.approx(0.3)


def test_a_failing_program_is_an_error_result_carrying_its_stderr() -> None:
    failed = RunResult(1, "", "PolicyDenied: policy denied fs__read (rule 'outside-workspace')")
    loop, model, _, _ = make([code_turn("x"), text_turn("ok")], result=failed)
    loop.run("t")
    [result] = model.asked[1][2]["content"]
    assert result["is_error"] is True
    assert "rule 'outside-workspace'" in result["content"]


def test_another_tool_name_or_no_code_is_refused_without_running_anything() -> None:
    wrong = Reply("", (ToolUse("a", "bash", {"code": "x"}), ToolUse("b", TOOL_NAME, {"src": 1})),
                  "tool_use", 1, 1, "m", ())  # fmt: skip
    loop, model, execute, _ = make([wrong, text_turn("ok")])
    loop.run("t")
    assert execute.ran == []
    results = model.asked[1][-1]["content"]
    assert [(r["tool_use_id"], r["is_error"]) for r in results] == [("a", True), ("b", True)]
    assert "one tool, execute_code" in results[0]["content"]


def test_the_step_budget_stops_it_before_the_next_request() -> None:
    loop, model, _, events = make([code_turn("x", n) for n in range(10)], Budgets(steps=3))
    outcome = loop.run("t")
    assert (outcome.kind, outcome.budget) == ("budget", "steps")
    assert len(model.asked) == 3
    assert events[-1] == {"step": "budget", "budget": "steps", "text": outcome.text}
    assert outcome.text == "step budget exhausted (3 of 3 steps)"


def test_the_token_budget_stops_it_before_the_program_runs() -> None:
    loop, _, execute, _ = make([code_turn("x", tokens=600)], Budgets(tokens=1000))
    outcome = loop.run("t")
    assert (outcome.kind, outcome.budget) == ("budget", "tokens")
    assert execute.ran == []  # checked before each execute_code, not only between requests


def test_the_cost_budget_stops_it() -> None:
    loop, _, _, _ = make([code_turn("x", n, tokens=100) for n in range(5)], Budgets(cost_usd=3.0))
    outcome = loop.run("t")
    assert (outcome.kind, outcome.budget, outcome.spent.steps) == ("budget", "cost_usd", 2)


def test_the_time_budget_is_the_programs_deadline_and_stops_it_after() -> None:
    stopped = RunResult(None, "", "", stopped="deadline")
    loop, model, execute, _ = make([code_turn("while True: pass")], Budgets(seconds=30),
                                   result=stopped, run_s=29)  # fmt: skip
    outcome = loop.run("t")
    assert execute.ran == [("while True: pass", 1030.0)]  # the start plus the time budget
    assert model.timeouts == [30.0]  # a model request is cut at the deadline too
    assert (outcome.kind, outcome.budget) == ("budget", "seconds")


def test_a_model_request_cut_at_the_deadline_ends_with_the_time_budget() -> None:
    loop, _, _, _ = make([ModelError("timed out")], Budgets(seconds=0.5))
    outcome = loop.run("t")  # the fake model's request takes 1 s
    assert (outcome.kind, outcome.budget) == ("budget", "seconds")


def test_a_model_failure_ends_it_with_an_error() -> None:
    loop, _, _, events = make([ModelError("the vendor answered 401: bad key")])
    outcome = loop.run("t")
    assert outcome.kind == "error"
    assert "401" in outcome.text
    assert events[-1]["step"] == "error"


def test_with_every_budget_off_it_runs_until_the_model_answers() -> None:
    replies: list[Reply | Exception] = [code_turn("x", n, tokens=10**6) for n in range(300)]
    loop, _, execute, _ = make([*replies, text_turn("done")], Budgets(None, None, None, None))
    outcome = loop.run("t")
    assert (outcome.kind, len(execute.ran)) == ("answer", 300)


@pytest.mark.parametrize(
    ("result", "head"),
    [
        (RunResult(0, "", ""), "exit code: 0"),
        (
            RunResult(None, "", "", stopped="time limit"),
            "stopped: the program ran past its time limit",
        ),
        (RunResult(None, "", "", stopped="deadline"), "stopped: the session's time budget ran out"),
    ],
)
def test_what_the_model_reads_back(result: RunResult, head: str) -> None:
    assert render(result).startswith(head)


def test_a_second_task_continues_the_conversation_and_counts_on() -> None:
    loop, model, _, _ = make([code_turn("x"), text_turn("first"), text_turn("second")])
    assert loop.run("one").text == "first"
    outcome = loop.run("two")
    assert outcome.text == "second"
    asked = model.asked[-1]
    assert [m["role"] for m in asked] == ["user", "assistant", "user", "assistant", "user"]
    assert asked[-1]["content"] == [{"type": "text", "text": "two"}]
    assert outcome.spent.steps == 3  # across tasks


def test_the_time_budget_counts_per_task_and_the_others_across_tasks() -> None:
    loop, _, _, _ = make(
        [text_turn("a"), text_turn("b"), text_turn("c")], Budgets(seconds=5, steps=2)
    )
    loop.clock.now += 100  # the user thought for a while  # type: ignore[attr-defined]
    assert loop.run("one").kind == "answer"
    loop.clock.now += 100  # type: ignore[attr-defined]
    assert loop.run("two").kind == "answer"
    assert (loop.run("three").budget, len(loop.messages)) == ("steps", 5)


def test_calls_cut_by_a_budget_still_get_a_result_so_the_next_task_is_valid() -> None:
    uses = (ToolUse("a", TOOL_NAME, {"code": "1"}), ToolUse("b", TOOL_NAME, {"code": "2"}))
    blocks = ({"type": "tool_use", "id": "a"}, {"type": "tool_use", "id": "b"})
    two = Reply("", uses, "tool_use", 600, 0, "m", blocks)
    loop, _, execute, _ = make([two], Budgets(tokens=500))
    assert loop.run("t").budget == "tokens"
    assert execute.ran == []
    results = loop.messages[-1]["content"]
    assert [(r["tool_use_id"], r["is_error"]) for r in results] == [("a", True), ("b", True)]
    assert results[0]["content"].startswith("not run: token budget exhausted")


def test_old_turns_are_compacted_into_the_models_summary_keeping_the_latest_exchange() -> None:
    big = [code_turn(f"step {n}", n, tokens=1000) for n in range(2)]
    big.append(code_turn("step 2", 2, tokens=10))  # the context is small again after it
    summary = text_turn("SUMMARY: read a, b; c refused")
    loop, model, _, events = make(
        [big[0], big[1], summary, big[2], text_turn("done")], Budgets(cost_usd=None)
    )
    loop.compact_tokens = 1000
    outcome = loop.run("the task")
    assert outcome.text == "done"
    # The third request was the compaction: no tools, the conversation, then the instruction.
    compaction = model.asked[2]
    assert compaction[-1]["content"][-1]["text"].startswith("The conversation is getting long")
    assert [m["role"] for m in compaction] == ["user", "assistant", "user"]  # merged, valid
    after = model.asked[3]
    assert after[0]["content"][0]["text"].endswith("SUMMARY: read a, b; c refused")
    assert after[1]["content"][0]["input"] == {"code": "step 1"}  # the latest exchange, whole
    assert after[2]["content"][0]["tool_use_id"] == "toolu_1"
    assert [m["role"] for m in after] == ["user", "assistant", "user"]
    assert {"step": "compact", "before": 5, "after": 3} in events
    assert outcome.spent.steps == 5  # compacting is a request: it counts


def test_no_compaction_below_the_size_or_without_one() -> None:
    turns = [code_turn(f"s{n}", n, tokens=999) for n in range(3)]
    loop, model, _, events = make([*turns, text_turn("done")], Budgets(cost_usd=None))
    loop.compact_tokens = 1000
    loop.run("t")
    assert not [e for e in events if e["step"] == "compact"]
    assert len(model.asked) == 4
