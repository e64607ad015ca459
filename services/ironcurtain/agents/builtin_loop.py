"""The builtin agent's loop: ask the model, run the code it writes, send back what happened.

Pure apart from what is injected: the model (`Model`, the Anthropic SDK in builtin_model.py, a
fake in tests), the executor (builtin_sandbox.run in the agent), the clock and `say` (one event
per step, printed as a JSON line by the agent). The model has one tool, `execute_code`; a turn
without a tool call is the final answer. Budgets are checked before every model request and
before every program; a program and a model request are cut at the wall-clock deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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

    def run(self, task: str) -> Outcome:
        spent = Spent(started=self.clock())
        end = deadline(self.budgets, spent)
        messages: list[dict[str, Any]] = [{"role": "user", "content": task}]
        while True:
            stop = exhausted(self.budgets, spent, self.clock())
            if stop is not None:
                return self._stopped(stop, spent)
            try:
                reply = self.model.ask(self.system, messages, [TOOL], self._left(end))
            except ModelError as exc:
                stop = exhausted(self.budgets, spent, self.clock())
                if stop is not None:  # cut at the deadline
                    return self._stopped(stop, spent)
                self.say(step="error", text=f"model request failed: {exc}")
                return Outcome("error", f"model request failed: {exc}", spent)
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
            if not reply.tool_uses:
                self.say(step="answer", text=reply.text)
                return Outcome("answer", reply.text, spent)
            messages.append({"role": "assistant", "content": list(reply.content)})
            results = []
            for use in reply.tool_uses:
                stop = exhausted(self.budgets, spent, self.clock())
                if stop is not None:
                    return self._stopped(stop, spent)
                results.append(self._tool_result(use, end))
            messages.append({"role": "user", "content": results})

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
