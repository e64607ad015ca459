"""The builtin agent in its container: `python3 -m ironcurtain.agents.builtin_agent TASK`.

It lists the tools at the MCP door, turns them into Python stubs (builtin_stubs), and runs the
loop (builtin_loop) with the Anthropic SDK (builtin_model) and the code sandbox
(builtin_sandbox). One JSON line per step on stdout (the adapter renders them). Exit codes: 0 an
answer, 1 a failure (the door or the model), 3 a budget ended it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import builtin_budget, builtin_sandbox, builtin_stubs
from .builtin_loop import Loop
from .builtin_mcp import McpClient, McpError

EXIT_ANSWER, EXIT_FAILED, EXIT_BUDGET = 0, 1, 3
BUDGETS_ENV = "IRONCURTAIN_BUILTIN_BUDGETS"
CODE_SECONDS_ENV = "IRONCURTAIN_BUILTIN_CODE_SECONDS"
MODEL_ENV = "IRONCURTAIN_BUILTIN_MODEL"
COMPACT_ENV = "IRONCURTAIN_BUILTIN_COMPACT_TOKENS"
COMPACT_TOKENS = 150_000  # a request's input past this: old turns compacted (0: never)
HARD_GRACE_S = 30.0  # past the time budget, the process ends whatever it is waiting on

PROMPT = """\
You are IronCurtain's builtin coding agent, working on the user's task in {workspace}.

You act by calling the tool `execute_code` with a whole Python 3 program. Each program runs in a
fresh interpreter (nothing but files persists between programs): print what you need to see.
These functions are predefined in every program (synchronous, keyword arguments only; each
returns the tool's text result as a str):

{listing}

Every call goes through IronCurtain's policy. A refused call raises `PolicyDenied` (its `.rule`
and `.reason` say why); a call that needed a human's approval and did not get it raises
`NotApproved`; other failures raise `ToolError`. Read the reason and change course: do not
retry the same call. Some calls wait for a human to decide; that can take minutes.
There is no network access but these functions. A program may use {seconds:g} s of its own time
(waiting in a tool call does not count) and {memory} MiB of memory; output past {chars}
characters is cut.

When the task is done, answer with a short plain-text summary, without calling the tool.
"""


def say(**event: Any) -> None:
    print(json.dumps(event, sort_keys=True), flush=True)


def system_prompt(stubs: list[builtin_stubs.Stub], limits: builtin_sandbox.Limits) -> str:
    return PROMPT.format(
        workspace="/workspace",
        listing=builtin_stubs.listing(stubs) or "(none: the door lists no tools)",
        seconds=limits.seconds,
        memory=limits.memory_bytes // (1 << 20),
        chars=limits.output_chars,
    )


def _hard_stop(seconds: float, show: Callable[..., None]) -> None:
    """A backstop past the time budget: whatever the loop waits on, the process ends. 0: off."""

    def expire(_signum: int, _frame: object) -> None:
        show(step="budget", budget="seconds", text=f"hard deadline reached ({seconds:g} s)")
        os._exit(EXIT_BUDGET)

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def _shown(**event: Any) -> None:
    """Interactive: each step as the one-shot renderer shows it, on the user's terminal."""
    from .builtin import Builtin

    line = Builtin().render(json.dumps(event))
    if line:
        print(line, flush=True)


def _read(prompt: str) -> str | None:
    try:
        return input(prompt)
    except EOFError:
        return None


def repl(
    loop: Loop,
    budgets: builtin_budget.Budgets,
    read: Callable[[str], str | None] = _read,
    show: Callable[[str], None] = print,
) -> int:
    """The interactive mode: one conversation, a task per line; `exit` (or end of input) ends it.
    Tokens, steps and cost count across the conversation, the time budget per task; Ctrl-C
    stops the current task (its turns are forgotten, so the conversation stays valid)."""
    show(f"builtin agent, interactive: a task per line; {EXIT_WORDS[0]} ends the session")
    while True:
        line = read(PROMPT_TEXT)
        if line is None or line.strip() in EXIT_WORDS:
            return EXIT_ANSWER
        task = line.strip()
        if not task:
            continue
        kept = len(loop.messages)
        if budgets.seconds is not None:
            _hard_stop(budgets.seconds + HARD_GRACE_S, loop.say)
        try:
            outcome = loop.run(task)
        except KeyboardInterrupt:
            del loop.messages[kept:]
            show("[interrupted] the task stopped; its turns are forgotten")
            continue
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if outcome.kind == "budget" and outcome.budget != "seconds":
            show("the session's budget is spent: ending it")
            return EXIT_BUDGET


EXIT_WORDS = ("exit", "quit")
PROMPT_TEXT = "builtin> "


def main(argv: list[str], environ: Mapping[str, str] = os.environ) -> int:
    interactive = argv == ["--interactive"]
    show = _shown if interactive else say
    task = " ".join(argv).strip()
    if not task:
        show(step="error", text="no task given")
        return EXIT_FAILED
    try:
        budgets = builtin_budget.parse(environ.get(BUDGETS_ENV, ""))
        limits = builtin_sandbox.Limits(seconds=float(environ.get(CODE_SECONDS_ENV, "60")))
        compact = int(environ.get(COMPACT_ENV, str(COMPACT_TOKENS)))
    except ValueError as exc:
        show(step="error", text=f"bad settings: {exc}")
        return EXIT_FAILED
    builtin_sandbox.adopt_orphans()  # what a program starts in a session of its own dies too
    builtin_sandbox.guard_self()  # no program reads our memory or environment in /proc
    url = environ["IRONCURTAIN_MCP_URL"]
    try:
        tools = McpClient(url, timeout_s=60).list_tools()
    except McpError as exc:
        show(step="error", text=f"could not list the tools: {exc}")
        return EXIT_FAILED
    stubs = builtin_stubs.stubs(tools)
    source = builtin_stubs.source(stubs)

    from .builtin_model import DEFAULT_MODEL, connect, price

    model_name = environ.get(MODEL_ENV) or DEFAULT_MODEL
    show(step="start", tools=len(stubs), model=model_name, budgets=builtin_budget.to_spec(budgets))
    model = connect(
        environ["IRONCURTAIN_ANTHROPIC_FAKE_KEY"],
        https_proxy=environ.get("HTTPS_PROXY"),
        ca_file=environ.get("IRONCURTAIN_CA_CERT"),
        model=model_name,
    )
    workspace = Path("/workspace")

    def execute(code: str, deadline: float | None) -> builtin_sandbox.RunResult:
        return builtin_sandbox.run(
            code,
            source,
            url,
            limits,
            deadline=deadline,
            cwd=workspace if workspace.is_dir() else None,
        )

    loop = Loop(
        model=model,
        execute=execute,
        system=system_prompt(stubs, limits),
        budgets=budgets,
        price=price,
        clock=time.monotonic,
        say=show,
        compact_tokens=compact or None,
    )
    if interactive:
        return repl(loop, budgets)
    if budgets.seconds is not None:
        _hard_stop(budgets.seconds + HARD_GRACE_S, show)
    outcome = loop.run(task)
    return {"answer": EXIT_ANSWER, "budget": EXIT_BUDGET}.get(outcome.kind, EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
