"""The builtin agent's interactive mode: one conversation, a task per line, budgets across it."""

from __future__ import annotations

from collections.abc import Iterator

from ironcurtain.agents.builtin_agent import EXIT_ANSWER, EXIT_BUDGET, repl
from ironcurtain.agents.builtin_budget import Budgets
from ironcurtain.agents.builtin_loop import ModelError

from .test_builtin_loop import code_turn, make, text_turn


def _reader(lines: list[str]) -> tuple[list[str], object]:
    prompts: list[str] = []
    feed: Iterator[str] = iter(lines)

    def read(prompt: str) -> str | None:
        prompts.append(prompt)
        return next(feed, None)

    return prompts, read


def test_tasks_share_one_conversation_and_exit_ends_it() -> None:
    loop, model, _, events = make([code_turn("print(1)"), text_turn("one"), text_turn("two")])
    prompts, read = _reader(["first", "", "second", "exit", "never read"])
    shown: list[str] = []
    assert repl(loop, Budgets(), read, shown.append) == EXIT_ANSWER  # type: ignore[arg-type]
    assert prompts == ["builtin> "] * 4
    assert [e["text"] for e in events if e["step"] == "answer"] == ["one", "two"]
    assert len(model.asked[-1]) == 5  # the second task's request holds the first's turns


def test_the_end_of_input_ends_it() -> None:
    loop, _, _, _ = make([])
    assert repl(loop, Budgets(), _reader([])[1], lambda _: None) == EXIT_ANSWER  # type: ignore[arg-type]


def test_ctrl_c_stops_the_task_and_forgets_its_turns() -> None:
    loop, _, _, _ = make([code_turn("x"), KeyboardInterrupt(), text_turn("fine")])  # type: ignore[list-item]
    shown: list[str] = []
    assert repl(loop, Budgets(), _reader(["slow", "next"])[1], shown.append) == EXIT_ANSWER  # type: ignore[arg-type]
    assert "[interrupted] the task stopped; its turns are forgotten" in shown
    roles = [m["role"] for m in loop.messages]
    assert roles == ["user", "assistant"]  # only "next" and its answer
    assert loop.messages[0]["content"] == [{"type": "text", "text": "next"}]


def test_a_spent_budget_ends_the_session_but_a_task_past_its_time_does_not() -> None:
    timed_out = ModelError("timed out")
    loop, _, _, events = make(
        [timed_out, text_turn("a"), text_turn("b")], Budgets(seconds=0.5, steps=2)
    )
    shown: list[str] = []
    code = repl(loop, Budgets(seconds=0.5, steps=2), _reader(["t1", "t2", "t3", "t4"])[1],
                shown.append)  # type: ignore[arg-type]  # fmt: skip
    assert code == EXIT_BUDGET
    budgets = [e["budget"] for e in events if e["step"] == "budget"]
    assert budgets == ["seconds", "steps"]
    assert shown[-1] == "the session's budget is spent: ending it"
