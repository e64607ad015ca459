"""The `ironcurtain` command. Each concern registers its own subcommands here.

Every Python container of a session starts through this module, so a command loads only the
module that registers it: the others' imports (the CA's cryptography, the approval client, the
policy compiler...) would cost each container's start CPU for nothing. `--help` loads them all.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from . import __version__

# Top-level command -> the module whose register(subparsers) adds it (in --help order).
COMMANDS: dict[str, str] = {
    "images": "ironcurtain.images.command",
    "settings": "ironcurtain.config.command",
    "config": "ironcurtain.session.config_command",
    "run": "ironcurtain.session.command",
    "sessions": "ironcurtain.session.command",
    "down": "ironcurtain.session.command",
    "keys": "ironcurtain.session.command",
    "login": "ironcurtain.session.command",
    "ca": "ironcurtain.mitm.command",
    "mitm": "ironcurtain.mitm.command",
    "mcp-proxy": "ironcurtain.mcpproxy.command",
    "audit": "ironcurtain.audit.command",
    "escalations": "ironcurtain.approval.command",
    "approve": "ironcurtain.approval.command",
    "deny": "ironcurtain.approval.command",
    "show": "ironcurtain.approval.command",
    "history": "ironcurtain.approval.command",
    "revoke": "ironcurtain.approval.command",
    "auto-review": "ironcurtain.approval.command",
    "worker": "ironcurtain.escalation.worker",
    "shared": "ironcurtain.shared.command",
    "annotate-tools": "ironcurtain.english.command",
    "compile-policy": "ironcurtain.english.command",
    "refresh-lists": "ironcurtain.english.command",
}


def command_modules(argv: Sequence[str] = ()) -> list[ModuleType]:
    """The modules to register: only the named command's when argv names one, else every one."""
    first = next((a for a in argv if not a.startswith("-")), None)
    if first in COMMANDS and "--version" not in argv:
        return [importlib.import_module(COMMANDS[first])]
    names = COMMANDS.values()
    return [importlib.import_module(name) for name in dict.fromkeys(names)]


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ironcurtain",
        description="A secure runtime for AI coding agents.",
    )
    parser.add_argument("--version", action="version", version=f"ironcurtain {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in command_modules(argv):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
