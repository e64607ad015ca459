"""`ironcurtain config`: show and edit the user config file (show, set, unset, edit).

Every change goes through config/edit.py, which validates the whole file as a run reads it, and
is written atomically; `edit` asks with questionary (prompt_toolkit) in a terminal.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..config import edit
from ..config.settings import user_config_path

SAVE, QUIT = "save and quit", "quit without saving"


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "config", help="show and edit your settings (agent, budgets, timeouts, images, prices)"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("show", help="every setting the user config file sets (the default)")
    setter = actions.add_parser("set", help="set one setting: config set budget.cost_usd 2")
    setter.add_argument("name", help=", ".join(edit.BY_NAME))
    setter.add_argument("value", help="its value (budget.*: a number, or off)")
    unsetter = actions.add_parser("unset", help="remove one setting (back to its default)")
    unsetter.add_argument("name")
    actions.add_parser("edit", help="edit interactively (needs a terminal)")
    parser.set_defaults(handler=_config)


def _agents() -> list[str]:
    from ..agents.registry import ADAPTERS

    return sorted(ADAPTERS)


def _providers() -> frozenset[str]:
    """The names a price may be for, as `ironcurtain run` checks them."""
    from ..mitm import providers

    return frozenset(providers.builtin())


def _config(args: argparse.Namespace) -> int:
    path = user_config_path(os.environ)
    if path is None:
        print("config: error: neither XDG_CONFIG_HOME nor HOME is set")
        return 1
    try:
        text = path.read_text() if path.is_file() else ""
    except (OSError, UnicodeDecodeError) as exc:
        print(f"config: error: cannot read {path}: {exc}")
        return 1
    action = args.action or "show"
    try:
        if action == "show":
            edit.check(text, _agents(), str(path), _providers())
            print(show(text, path))
            return 0
        if action == "edit":
            if not (sys.stdin.isatty() and sys.stdout.isatty()):
                print("config: error: edit needs a terminal; use `config set NAME VALUE`")
                return 1
            edited = interactive(text, _agents(), _providers())
            if edited is None:
                print("config: nothing saved")
                return 0
        elif action == "set":
            value = edit.value_of(args.name, args.value)
            edited = edit.apply(text, args.name, value, _agents(), _providers())
        else:
            edited = edit.apply(text, args.name, None, _agents(), _providers())
    except edit.EditError as exc:
        print(f"config: refused: {exc}")
        return 1
    save(path, edited)
    print(f"config: saved {path}")
    return 0


def show(text: str, path: Path) -> str:
    found = edit.current(text)
    lines = [f"# {path}" + ("" if text else " (absent: every setting is its default)")]
    for setting in edit.SETTINGS:
        value = found.get(setting.name)
        shown = "(default)" if value is None else ("off" if value is False else repr(value))
        lines.append(f"{setting.name} = {shown}  # {setting.help}")
    priced = edit.current_prices(text)
    if priced:
        lines.append(f"prices: {priced} of your own (docs/mitm.md, 'Prices')")
    return "\n".join(lines)


def save(path: Path, text: str) -> None:
    """Written whole or not at all: a temporary file beside it, then renamed over it (over the
    file a symlink names, keeping its mode)."""
    path = path.resolve()
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, mode)  # settings, never a secret (those refuse to load here)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def interactive(
    text: str, agents: Iterable[str], providers: frozenset[str] | None = None, **io: Any
) -> str | None:
    """Pick a setting, give its value (checked as you type), repeat; the edited text on save,
    None on quit. `io`: prompt_toolkit's `input`/`output` (tests drive a pipe)."""
    import questionary

    known = list(agents)
    while True:
        found = edit.current(text)
        choices = [
            questionary.Choice(f"{s.name} = {_shown(found.get(s.name))}", value=s.name)
            for s in edit.SETTINGS
        ]
        picked = questionary.select(
            "Which setting?", choices=[*choices, SAVE, QUIT], **io
        ).unsafe_ask()
        if picked == SAVE:
            return text
        if picked == QUIT:
            return None
        setting = edit.BY_NAME[picked]
        if setting.kind == "agent":
            value: object = questionary.select(
                setting.help, choices=known, default=str(found.get(picked) or "") or None, **io
            ).unsafe_ask()
        else:
            answer = questionary.text(
                f"{setting.name} ({setting.help}; empty: default)",
                default=_shown(found.get(picked), blank=True),
                validate=_validator(text, picked, known, providers),
                **io,
            ).unsafe_ask()
            value = edit.value_of(picked, answer) if answer.strip() else None
        text = edit.apply(text, picked, value, known, providers)


def _validator(
    text: str, name: str, agents: list[str], providers: frozenset[str] | None
) -> Callable[[str], bool | str]:
    def valid(answer: str) -> bool | str:
        try:
            value = edit.value_of(name, answer) if answer.strip() else None
            edit.apply(text, name, value, agents, providers)
        except edit.EditError as exc:
            return str(exc)
        return True

    return valid


def _shown(value: object, blank: bool = False) -> str:
    if value is None:
        return "" if blank else "(default)"
    return "off" if value is False else str(value)
