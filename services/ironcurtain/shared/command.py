"""`ironcurtain shared up | down | env`: the team-shared Redis, approval service and worker."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from ..approval.settings import DEFAULT_PORT, state_dir
from .files import SharedFiles

COMPOSE_FILE = "compose.shared.yaml"
NETWORK = "ironcurtain-shared"


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("shared", help="start or stop the team-shared infrastructure")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="make missing secret files, then start (and wait healthy)")
    up.set_defaults(handler=_up)
    down = actions.add_parser("down", help="stop it (secret files stay)")
    down.set_defaults(handler=_down)
    env = actions.add_parser("env", help="print what sessions need to join it")
    env.set_defaults(handler=_env)


def shared_environ(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    directory = Path(environ.get("IRONCURTAIN_SHARED_DIR") or state_dir(environ) / "shared")
    return {
        **environ,
        "IRONCURTAIN_SHARED_DIR": str(directory),
        "IRONCURTAIN_SHARED_NETWORK": environ.get("IRONCURTAIN_SHARED_NETWORK", NETWORK),
        "IRONCURTAIN_APPROVAL_PORT": environ.get("IRONCURTAIN_APPROVAL_PORT", str(DEFAULT_PORT)),
    }


def _compose(environ: Mapping[str, str], *args: str) -> int:
    command = ["docker", "compose", "-f", COMPOSE_FILE, *args]
    return subprocess.run(command, env=dict(environ), check=False).returncode


def _up(args: argparse.Namespace) -> int:
    environ = shared_environ()
    files = SharedFiles(Path(environ["IRONCURTAIN_SHARED_DIR"]))
    with files.lock():  # the same lock as sessions starting the stack on demand
        try:
            environ["IRONCURTAIN_SECRETS_UID"] = str(files.ensure())
        except OSError as exc:
            print(f"shared: cannot prepare the secret files: {exc}", file=sys.stderr)
            return 2
        code = _compose(environ, "up", "--detach", "--wait", "--wait-timeout", "120")
    if code == 0:
        print(f"shared: up; approvals at http://127.0.0.1:{environ['IRONCURTAIN_APPROVAL_PORT']}")
    return code


def _down(args: argparse.Namespace) -> int:
    return _compose(shared_environ(), "down", "--remove-orphans")


def _env(args: argparse.Namespace) -> int:
    environ = shared_environ()
    directory = Path(environ["IRONCURTAIN_SHARED_DIR"])
    print(f"IRONCURTAIN_SHARED_NETWORK={environ['IRONCURTAIN_SHARED_NETWORK']}")
    print("IRONCURTAIN_REDIS_URL=redis://redis:6379/0")
    print(f"IRONCURTAIN_REDIS_CREDENTIAL_FILE={directory / 'redis_approval'}")
    print(f"IRONCURTAIN_APPROVAL_TOKEN_FILE={directory / 'approval_token'}")
    print(f"IRONCURTAIN_APPROVAL_URL=http://127.0.0.1:{environ['IRONCURTAIN_APPROVAL_PORT']}")
    return 0
