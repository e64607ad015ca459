"""The builtin agent's loop: ask the model, run the code it writes, send back what happened.

Pure apart from what is injected: the model (`Model`, the Anthropic SDK in builtin_model.py, a
fake in tests), the executor (builtin_sandbox.run in the agent), the clock and `say` (one event
per step, printed as a JSON line by the agent). The model has one tool, `execute_code`; a turn
without a tool call is the final answer. Budgets are checked before every model request and
before every program; a program and a model request are cut at the wall-clock deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from .builtin_budget import Budgets, Exhausted, Spent, deadline, exhausted
from .builtin_sandbox import RunResult

TOOL_NAME = "execute_code"
TOOL = {
    "name": TOOL_NAME,
    "description": (
        "Run a Python 3 program in a fresh interpreter and get its stdout, stderr and exit code. "
        "The tool functions listed in the system prompt are predefined in it (synchronous; each "
        "returns the tool's text). Nothing persists between programs but files."
    ),
    "input_schema": {
        "type": "object",
        "properties": {"code": {"type": "string", "description": "the whole program"}},
        "required": ["code"],
    },
}
SHOWN_CODE_CHARS = 2000  # in the event stream; the model's own copy is whole


@dataclass(frozen=True, slots=True)
class ToolUse:
    id: str
    name: str
    input: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    tool_uses: tuple[ToolUse, ...]
    stop_reason: str
    input_tokens: int = 0
    output_tokens: int = 0
    model: str = ""
    content: tuple[Mapping[str, Any], ...] = ()  # the assistant message's blocks, as sent back


class ModelError(Exception):
    """The model request failed (the message says how: refused, unreachable, timed out)."""


class Model(Protocol):
    def ask(
        self,
        system: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        timeout_s: float | None,
    ) -> Reply: ...


Executor = Callable[[str, float | None], RunResult]  # (code, deadline) -> result
Price = Callable[[str, int, int], float]  # (model, input tokens, output tokens) -> USD


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str  # "answer", "budget" or "error"
    text: str
    spent: Spent
    budget: str | None = None  # which budget ended it (kind "budget")


@dataclass
class Loop:
    model: Model
    execute: Executor
    system: str
    budgets: Budgets = field(default_factory=Budgets)
    price: Price = lambda _model, _in, _out: 0.0
    clock: Callable[[], float] = field(default=lambda: 0.0)
    say: Callable[..., None] = lambda **_event: None

    compact_tokens: int | None = None  # compact old turns once a request's input is this big
    messages: list[dict[str, Any]] = field(default_factory=list)  # the conversation so far
    spent: Spent | None = None  # across the conversation's tasks

    def run(self, task: str) -> Outcome:
        """One task, on the conversation so far (empty: a one-shot session). Tokens, steps and
        cost count across the conversation; the time budget counts from this task's start."""
        now = self.clock()
        spent = Spent(started=now) if self.spent is None else replace(self.spent, started=now)
        outcome = self._run(task, spent)
        self.spent = outcome.spent
        return outcome

    def _run(self, task: str, spent: Spent) -> Outcome:
        end = deadline(self.budgets, spent)
        _add_user(self.messages, [{"type": "text", "text": task}])
        last_input = 0
        while True:
            stop = exhausted(self.budgets, spent, self.clock())
            if stop is not None:
                return self._stopped(stop, spent)
            if self.compact_tokens is not None and last_input >= self.compact_tokens:
                spent, error = self._compact(spent, end)
                if error is not None:
                    return error
                last_input = 0
                continue  # the budgets again: compacting was a request too
            try:
                reply = self.model.ask(self.system, self.messages, [TOOL], self._left(end))
            except ModelError as exc:
                return self._failed(exc, spent)
            spent = self._charge(spent, reply)
            last_input = reply.input_tokens
            self.messages.append({"role": "assistant", "content": list(reply.content)})
            if not reply.tool_uses:
                self.say(step="answer", text=reply.text)
                return Outcome("answer", reply.text, spent)
            results: list[dict[str, Any]] = []
            for use in reply.tool_uses:
                stop = exhausted(self.budgets, spent, self.clock())
                if stop is not None:  # the calls it asked for get an answer: the next task's
                    # request must hold a result for every tool_use (the API refuses it else)
                    results += [_not_run(u, stop.message) for u in reply.tool_uses[len(results) :]]
                    self.messages.append({"role": "user", "content": results})
                    return self._stopped(stop, spent)
                results.append(self._tool_result(use, end))
            self.messages.append({"role": "user", "content": results})

    def _charge(self, spent: Spent, reply: Reply) -> Spent:
        cost = self.price(reply.model, reply.input_tokens, reply.output_tokens)
        spent = spent.add(reply.input_tokens, reply.output_tokens, cost)
        self.say(
            step="llm",
            n=spent.steps,
            stop_reason=reply.stop_reason,
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            text=reply.text,
        )
        return spent

    def _failed(self, exc: ModelError, spent: Spent) -> Outcome:
        stop = exhausted(self.budgets, spent, self.clock())
        if stop is not None:  # cut at the deadline
            return self._stopped(stop, spent)
        self.say(step="error", text=f"model request failed: {exc}")
        return Outcome("error", f"model request failed: {exc}", spent)

    def _compact(self, spent: Spent, end: float | None) -> tuple[Spent, Outcome | None]:
        """Old turns replaced by the model's own summary of them; the latest exchange (the
        calls it made and their results, not yet read) is kept as it is."""
        if len(self.messages) < 4:
            return spent, None
        keep = self.messages[-2:]  # an assistant turn with its tool calls, then their results
        asked = [
            *self.messages[:-2],
            {"role": "user", "content": [{"type": "text", "text": COMPACT}]},
        ]
        try:
            # The tool stays offered (the API wants it beside tool_use blocks); a call is ignored.
            reply = self.model.ask(self.system, _merged(asked), [TOOL], self._left(end))
        except ModelError as exc:
            return spent, self._failed(exc, spent)
        spent = self._charge(spent, reply)
        summary = {"type": "text", "text": f"{SUMMARY_HEAD}\n{reply.text}"}
        before = len(self.messages)
        self.messages[:] = [{"role": "user", "content": [summary]}, *keep]
        self.say(step="compact", before=before, after=len(self.messages))
        return spent, None

    def _left(self, end: float | None) -> float | None:
        return None if end is None else max(end - self.clock(), 0.0)

    def _tool_result(self, use: ToolUse, end: float | None) -> dict[str, Any]:
        code = use.input.get("code") if isinstance(use.input, Mapping) else None
        if use.name != TOOL_NAME or not isinstance(code, str):
            text = f"there is one tool, {TOOL_NAME}, taking {{code: string}}"
            self.say(step="code", tool=use.name, refused=text)
            return {"type": "tool_result", "tool_use_id": use.id, "content": text, "is_error": True}
        self.say(step="code", code=code[:SHOWN_CODE_CHARS])
        result = self.execute(code, end)
        self.say(
            step="result",
            exit_code=result.exit_code,
            stopped=result.stopped,
            stdout=result.stdout[:SHOWN_CODE_CHARS],
            stderr=result.stderr[:SHOWN_CODE_CHARS],
            duration_s=result.duration_s,
        )
        return {
            "type": "tool_result",
            "tool_use_id": use.id,
            "content": render(result),
            "is_error": result.exit_code != 0,
        }

    def _stopped(self, stop: Exhausted, spent: Spent) -> Outcome:
        self.say(step="budget", budget=stop.budget, text=stop.message)
        return Outcome("budget", stop.message, spent, stop.budget)


COMPACT = (
    "The conversation is getting long. For yourself, summarize it: the task, what you did, what "
    "you learned (files, facts, refusals and their reasons), and what remains. Plain text; no "
    "tool call."
)
SUMMARY_HEAD = "[The earlier turns of this conversation, summarized by you]"


def _add_user(messages: list[dict[str, Any]], blocks: list[dict[str, Any]]) -> None:
    """A user turn; merged into the last one when that is a user turn too (tool results)."""
    if messages and messages[-1]["role"] == "user":
        last = messages[-1]["content"]
        content = [{"type": "text", "text": last}] if isinstance(last, str) else list(last)
        messages[-1] = {"role": "user", "content": [*content, *blocks]}
    else:
        messages.append({"role": "user", "content": blocks})


def _merged(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: list[dict[str, Any]] = []
    for message in messages:
        if message["role"] == "user":
            _add_user(merged, list(message["content"]))
        else:
            merged.append(message)
    return merged


def _not_run(use: ToolUse, why: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": use.id, "content": f"not run: {why}",
            "is_error": True}  # fmt: skip


def render(result: RunResult) -> str:
    """What the model reads back from one program."""
    if result.stopped == "deadline":
        head = "stopped: the session's time budget ran out while the program ran"
    elif result.stopped:
        head = f"stopped: the program ran past its {result.stopped}"
    else:
        head = f"exit code: {result.exit_code}"
    parts = [head]
    if result.stdout:
        parts.append(f"--- stdout ---\n{result.stdout}")
    if result.stderr:
        parts.append(f"--- stderr ---\n{result.stderr}")
    return "\n".join(parts)
