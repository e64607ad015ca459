"""`ironcurtain settings`: the settings every command uses, and where each came from."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .. import home
from .settings import KEYS, SettingsError, load


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "settings", help="show the settings (environment > user config > .env > default)"
    )
    parser.add_argument("key", nargs="?", help="print this setting's value alone (for make)")
    parser.set_defaults(handler=_show)


def checkout() -> Path | None:
    """The checkout this command runs from, whose `.env` counts; None in an installed copy."""
    try:
        found = home.locate()
    except home.HomeMissing:
        return None
    return found.root if found.checkout else None


def _show(args: argparse.Namespace) -> int:
    try:
        settings = load(os.environ, checkout())
    except SettingsError as exc:
        print(f"settings: error: {exc}")
        return 1
    values = settings.as_env()
    if args.key is not None:
        if args.key not in values:
            print(f"settings: error: unknown setting {args.key} (known: {', '.join(values)})")
            return 1
        print(values[args.key])
        return 0
    sources = dict(settings.sources)
    for key in KEYS:
        print(f"{key.env}={values[key.env]}  # {sources[key.env]}")
    return 0
