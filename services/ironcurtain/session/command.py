"""`ironcurtain run`: run one agent session (what `make up TASK=...` calls)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .readiness import missing_parts

EXIT_NOT_BUILT = 3


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("run", help="run an agent session on a task")
    parser.add_argument("--task", help="the task for the agent (interactive when omitted)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    missing = missing_parts(Path.cwd())
    if missing:
        print("run: cannot start a session: these parts are not built yet:")
        for part in missing:
            print(f"  - {part.name}")
        print("run: refusing to start (no session was run).")
        return EXIT_NOT_BUILT
    from .run import run_session  # the orchestration, once it exists

    return run_session(args)
