"""The `ironcurtain` command. Each concern registers its own subcommands here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .approval import command as approval_command
from .audit import command as audit_command
from .english import command as english_command
from .escalation import worker as worker_command
from .images import command as images_command
from .mcpproxy import command as mcpproxy_command
from .mitm import command as mitm_command
from .session import command as session_command
from .shared import command as shared_command

# Each module exposes register(subparsers); a command appears in --help only once it exists.
COMMAND_MODULES = (
    images_command,
    session_command,
    mitm_command,
    mcpproxy_command,
    audit_command,
    approval_command,
    worker_command,
    shared_command,
    english_command,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ironcurtain",
        description="A secure runtime for AI coding agents.",
    )
    parser.add_argument("--version", action="version", version=f"ironcurtain {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
