"""Edits of the user config file's text: one setting set or unset, the rest kept as written.

tomlkit keeps the user's comments, order and spacing; every edit is validated by the same
parsers that read the file (settings, config/user.py, config/prices.py) before it is returned,
so `ironcurtain config` can never save a file a run would refuse. Pure: text in, text out.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass

import tomlkit
import tomlkit.exceptions
import tomlkit.items

from . import prices, user
from .settings import KEYS, SettingsError, parse_user_config


@dataclass(frozen=True, slots=True)
class Setting:
    name: str  # as written on the command line: "image_tag", "session.agent", "budget.tokens"
    kind: str  # "text" | "agent" | "seconds" | "limit"
    help: str


SETTINGS: tuple[Setting, ...] = (
    *(Setting(k.toml, "text", f"{k.env} (string)") for k in KEYS),
    Setting("session.agent", "agent", "the agent `ironcurtain run` starts without --agent"),
    Setting("session.escalation_timeout_s", "seconds", "seconds a call waits for a human decision"),
    Setting("budget.tokens", "limit", "tokens per session (off: no limit)"),
    Setting("budget.requests", "limit", "LLM requests per session (off: no limit)"),
    Setting("budget.seconds", "limit", "seconds of LLM use per session (off: no limit)"),
    Setting("budget.cost_usd", "limit", "estimated USD per session (off: no limit)"),
)
BY_NAME = {s.name: s for s in SETTINGS}
OFF = frozenset({"off", "false", "none"})


class EditError(ValueError):
    """The edit is refused; the message names the setting and what is wrong."""


def value_of(name: str, text: str) -> object:
    """What a command-line VALUE means for `name` (a string, a number, or False for off)."""
    setting = _setting(name)
    if setting.kind in ("text", "agent"):
        return text
    if setting.kind == "limit" and text.strip().lower() in OFF:
        return False
    try:
        number = float(text)
    except ValueError:
        raise EditError(f"{name}: {text[:40]!r} is not a number") from None
    return int(number) if number.is_integer() else number


def apply(
    text: str,
    name: str,
    value: object | None,
    agents: Iterable[str],
    providers: frozenset[str] | None = None,
) -> str:
    """`text` with `name` set to `value` (None: removed), validated as a run would read it
    (`providers`: the names a price may be for, as a run checks them)."""
    _setting(name)
    check(text, agents, providers=providers)  # a file a run refuses is named before any edit
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise EditError(f"the user config is not valid TOML: {exc}") from None
    section, _, key = name.rpartition(".")
    table = doc
    if section:
        if section not in doc:
            if value is None:
                return text
            doc.add(section, tomlkit.table())
        table = doc[section]
        if not isinstance(table, tomlkit.items.Table):
            raise EditError(f"{section}: a table ([{section}]), not {type(table).__name__}")
    if value is None:
        table.pop(key, None)
        if section and not doc[section]:
            doc.pop(section)
    else:
        table[key] = value
    edited = tomlkit.dumps(doc)
    check(edited, agents, providers=providers)
    return edited


def check(
    text: str,
    agents: Iterable[str],
    source: str = "the user config",
    providers: frozenset[str] | None = None,
) -> None:
    """The whole file as `ironcurtain run` reads it; EditError naming the first problem."""
    try:
        parse_user_config(text, source)
        doc = tomllib.loads(text)
        user.parse(doc.get("session"), doc.get("budget"), agents)
        if "prices" in doc:
            prices.parse(doc["prices"], providers)
    except (SettingsError, user.UserConfigError, prices.PriceError, tomllib.TOMLDecodeError) as exc:
        raise EditError(str(exc)) from None


def current(text: str) -> dict[str, object]:
    """Each setting of SETTINGS that the file sets, by name."""
    doc = tomllib.loads(text) if text.strip() else {}
    found: dict[str, object] = {}
    for setting in SETTINGS:
        section, _, key = setting.name.rpartition(".")
        table = doc.get(section, {}) if section else doc
        if isinstance(table, dict) and key in table:
            found[setting.name] = table[key]
    return found


def _setting(name: str) -> Setting:
    try:
        return BY_NAME[name]
    except KeyError:
        known = ", ".join(BY_NAME)
        raise EditError(f"unknown setting {name!r} (known: {known})") from None


def current_prices(text: str) -> int:
    """How many price entries of the user's own the file holds (they are edited as TOML)."""
    doc = tomllib.loads(text) if text.strip() else {}
    table = doc.get("prices")
    if not isinstance(table, dict):
        return 0
    return sum(len(v) for v in table.values() if isinstance(v, list))
