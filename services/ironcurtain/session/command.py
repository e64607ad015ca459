"""`ironcurtain run`: run one agent session (what `make up TASK=...` calls)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config.user import SessionDefaults


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "run", help='run an agent session in this repository: ironcurtain run "fix the test"'
    )
    parser.add_argument(
        "task_text",
        nargs="?",
        default=None,
        metavar="TASK",
        help="the task for the agent (interactive when omitted)",
    )
    parser.add_argument("--task", help="the task, as an option (make up uses it)")
    parser.add_argument(
        "--pty",
        action="store_true",
        help="interactive: this terminal on the agent's own interface, with resizes and "
        "escalation notices (the default without --task; needs a terminal)",
    )
    parser.add_argument(
        "--agent",
        default=None,
        help="claude-code | codex | builtin | scripted (default: the user config's session.agent, "
        "else claude-code)",
    )
    parser.add_argument(
        "--workspace", type=Path, default=None, help="the folder the agent works on (default: .)"
    )
    parser.add_argument(
        "--policy", type=Path, default=None, help="policy folder (default: the installed policy/)"
    )
    parser.add_argument("--session-id", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--compose-file",
        type=Path,
        action="append",
        default=[],
        help="an extra compose file merged over compose.yaml (tests, mirrors)",
    )
    parser.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="HOST=ADDRESS:PORT",
        help="send a provider host's traffic elsewhere (tests, air-gapped mirrors)",
    )
    parser.add_argument("--upstream-ca", type=Path, default=None, help="CA for --upstream")
    parser.add_argument(
        "--escalation-timeout",
        type=float,
        default=None,
        help="seconds a call waits for a human (default: session.escalation_timeout_s, else 300)",
    )
    parser.add_argument(
        "--siblings",
        type=Path,
        default=None,
        metavar="FILE",
        help="sibling services the agent may reach (YAML, outside the workspace; docs/session.md)",
    )
    parser.add_argument(
        "--budget",
        default=None,
        metavar="SPEC",
        help="the builtin agent's budgets, e.g. tokens=500000,steps=50,seconds=10m,cost_usd=2 "
        "('off' switches one off; defaults 1M tokens, 200 steps, 30m, $5)",
    )
    parser.add_argument(
        "--no-build", action="store_true", help="do not check or build images first"
    )
    parser.set_defaults(handler=_run)
    register_sessions(commands)
    register_keys(commands)
    from .login import register_login

    register_login(commands)


def _run(args: argparse.Namespace) -> int:
    import sys
    from dataclasses import replace

    from .plan import parse_upstream
    from .run import EXIT_REFUSED, Options, run_session

    if args.task_text is not None:
        if args.task is not None:
            print("run: refused: give the task once (as TASK or as --task, not both)")
            return EXIT_REFUSED
        args.task = args.task_text
    if args.pty and args.task is not None:
        print("run: refused: --pty opens an interactive session; give it no --task")
        return EXIT_REFUSED
    if args.task is None and not (sys.stdin.isatty() and sys.stdout.isatty()):
        print(
            "run: refused: an interactive session (--pty, or no --task) needs a terminal on "
            "stdin and stdout; give a task instead (make up TASK=... / --task)"
        )
        return EXIT_REFUSED
    try:
        upstreams = tuple(
            replace(parse_upstream(text), ca_file=args.upstream_ca) for text in args.upstream
        )
        defaults = user_defaults(os.environ)
    except ValueError as exc:
        print(f"run: refused: {exc}")
        return EXIT_REFUSED
    agent = args.agent or defaults.agent or "claude-code"
    budgets = None
    if args.budget is not None and agent != "builtin":
        print("run: refused: --budget is for --agent builtin (other agents: the MITM's)")
        return EXIT_REFUSED
    if agent == "builtin":
        from ..agents.builtin_budget import BudgetError, parse
        from ..config.command import checkout
        from ..config.settings import SettingsError, load

        try:  # --budget, else the settings' builtin_budgets (user config, .env, environment)
            spec = args.budget
            if spec is None:
                spec = load(os.environ, checkout()).builtin_budgets
            budgets = parse(spec)
        except (BudgetError, SettingsError) as exc:
            print(f"run: refused: {exc}")
            return EXIT_REFUSED
    options = Options(
        task=args.task,
        agent=agent,
        workspace=args.workspace or Path.cwd(),
        policy=args.policy,
        session_id=args.session_id,
        compose_files=tuple(p.resolve() for p in args.compose_file),
        upstreams=upstreams,
        escalation_timeout_s=args.escalation_timeout or defaults.escalation_timeout_s or 300.0,
        build_images=not args.no_build,
        siblings=args.siblings.resolve() if args.siblings else None,
        budget=defaults.budget,
        budgets=budgets,
    )
    return run_session(options)


def user_defaults(environ: Mapping[str, str]) -> SessionDefaults:
    """The user config's [session] and [budget] (config/user.py); ValueError names the field."""
    from ..agents.registry import ADAPTERS
    from ..config import user
    from ..config.settings import user_table

    session, where = user_table(environ, "session")
    budget, _ = user_table(environ, "budget")
    try:
        return user.parse(session, budget, ADAPTERS)
    except user.UserConfigError as exc:
        raise ValueError(f"{where}: {exc}") from None


def register_sessions(commands: argparse._SubParsersAction) -> None:
    listing = commands.add_parser("sessions", help="list running sessions across worktrees")
    listing.set_defaults(handler=_sessions)
    down = commands.add_parser("down", help="stop a session and remove its containers")
    down.add_argument(
        "session", nargs="?", help="session id or compose project name (see `sessions`)"
    )
    down.add_argument(
        "--stale",
        action="store_true",
        help="remove the networks of stopped sessions (no container left), freeing their "
        "addresses (every start does this too)",
    )
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

    from ..state import state_dir
    from . import leases, reclaim
    from .compose import Compose, ComposeError
    from .layout import SessionLayout
    from .naming import SessionName
    from .sessions import running_sessions

    client = docker.from_env()
    if args.stale or args.session is None:
        held = leases.Leases(
            leases.lease_dir(os.environ),
            leases.pool_from(os.environ),
            reclaim.engine_subnets(client),
            group=leases.socket_group(os.environ),
        )
        removed, problems = reclaim.sweep(client, held)
        for problem in problems:
            print(f"down: could not remove {problem}")
        print(f"down: removed {len(removed)} stale session networks {' '.join(removed)}".strip())
        return 1 if problems else 0
    matches = [
        s.name
        for s in running_sessions(client)
        if args.session in (s.name.session_id, s.name.project)
    ]
    if not matches:  # a crashed session whose containers are gone: its networks only
        names = {SessionName.parse(n.project) for n in reclaim.engine_networks(client) if n.ours}
        matches = [n for n in names if n and args.session in (n.session_id, n.project)]
    if len(matches) != 1:
        print(f"down: no single running session matches {args.session!r} (see `sessions`)")
        return 1
    name = matches[0]
    try:
        # No compose file: compose acts on the project's labels (cwd without a compose.yaml).
        Compose(name.project, cwd=Path("/")).down()
    except ComposeError as exc:
        print(f"down: {exc}")
        return 1
    for network in reclaim.engine_networks(client):  # compose leaves those of no container
        if network.ours and network.project == name.project:
            client.api.remove_network(network.id)
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

    from ..keystore import KeyStore, KeyStoreError
    from ..state import state_dir

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
    from ..keystore import KeyStore
    from ..state import state_dir

    store = KeyStore(state_dir() / "keys")
    names = store.providers()
    print("\n".join(names) if names else f"keys: none stored in {store.root}")
    return 0
