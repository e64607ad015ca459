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
    register_sessions(commands)
    register_keys(commands)


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


def register_sessions(commands: argparse._SubParsersAction) -> None:
    listing = commands.add_parser("sessions", help="list running sessions across worktrees")
    listing.set_defaults(handler=_sessions)
    down = commands.add_parser("down", help="stop a session and remove its containers")
    down.add_argument("session", help="session id or compose project name (see `sessions`)")
    down.set_defaults(handler=_down)


def _sessions(args: argparse.Namespace) -> int:
    import docker

    from .sessions import running_sessions

    found = running_sessions(docker.from_env())
    if not found:
        print("sessions: none running")
    for session in found:
        states = ", ".join(
            f"{c}={s}" for c, s in zip(session.containers, session.states, strict=True)
        )
        print(f"{session.name.session_id}  {session.name.project}  {states}")
    return 0


def _down(args: argparse.Namespace) -> int:
    import docker

    from .compose import Compose, ComposeError
    from .layout import SessionLayout, state_dir
    from .sessions import running_sessions

    matches = [
        s.name
        for s in running_sessions(docker.from_env())
        if args.session in (s.name.session_id, s.name.project)
    ]
    if len(matches) != 1:
        print(f"down: no single running session matches {args.session!r} (see `sessions`)")
        return 1
    name = matches[0]
    try:
        Compose(name.project).down()
    except ComposeError as exc:
        print(f"down: {exc}")
        return 1
    SessionLayout.for_session(state_dir(), name).remove_ephemeral()
    print(f"down: stopped {name.project}")
    return 0


def register_keys(commands: argparse._SubParsersAction) -> None:
    keys = commands.add_parser("keys", help="store real provider keys (files, never env vars)")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    setter = sub.add_parser("set", help="store a provider's real key, read from standard input")
    setter.add_argument("provider", help="e.g. anthropic, openai")
    setter.set_defaults(handler=_keys_set)
    listing = sub.add_parser("list", help="list the providers that have a stored key")
    listing.set_defaults(handler=_keys_list)


def _keys_set(args: argparse.Namespace) -> int:
    import getpass
    import sys

    from .keys import KeyStore, KeyStoreError
    from .layout import state_dir

    prompt = f"{args.provider} API key (not echoed): "
    value = getpass.getpass(prompt) if sys.stdin.isatty() else sys.stdin.read()
    try:
        path = KeyStore(state_dir() / "keys").set(args.provider, value)
    except KeyStoreError as exc:
        print(f"keys: refused: {exc}")
        return 1
    print(f"keys: stored the {args.provider} key in {path} (mode 0600)")
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    from .keys import KeyStore
    from .layout import state_dir

    store = KeyStore(state_dir() / "keys")
    names = store.providers()
    print("\n".join(names) if names else f"keys: none stored in {store.root}")
    return 0
