"""The host's settings: one parser and one loader, for make and every `ironcurtain` command alike.

A setting comes from, first to last: the environment (a non-empty value), the user config file
(`$XDG_CONFIG_HOME/ironcurtain/config.toml`, default `~/.config/ironcurtain/config.toml`), the
checkout's `.env`, then the default. The same inputs give the same settings however a session
starts, so image content hashes do not differ between `make images` and `ironcurtain run`.

Both files are allowlists: an unknown key, or a line of `.env` that is not `KEY=VALUE`, is
refused with its file and line. Neither may hold a secret: real keys live in the key store
(`ironcurtain keys set`). The parsers are pure; `load` is the thin shell that reads the files.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BASE_IMAGE = "debian:bookworm-slim"
DEFAULT_IMAGE_TAG = "latest"
DEFAULT_RUNTIME = "auto"
USER_CONFIG = Path("ironcurtain") / "config.toml"


@dataclass(frozen=True, slots=True)
class Key:
    env: str  # its name in the environment and in .env
    toml: str  # its name in the user config file
    default: str


KEYS: tuple[Key, ...] = (
    Key("BASE_IMAGE", "base_image", DEFAULT_BASE_IMAGE),
    Key("EXTRA_CA_CERT", "extra_ca_cert", ""),
    Key("IRONCURTAIN_IMAGE_TAG", "image_tag", DEFAULT_IMAGE_TAG),
    # auto | runc | runsc: gVisor for the agent (session/runtime.py checks the value).
    Key("IRONCURTAIN_RUNTIME", "runtime", DEFAULT_RUNTIME),
    # The builtin agent's budgets (agents/builtin_budget.py: `steps=50,seconds=10m`); `run
    # --budget` outranks it. Empty: the defaults.
    Key("IRONCURTAIN_BUILTIN_BUDGETS", "builtin_budgets", ""),
)
_BY_ENV = {k.env: k for k in KEYS}
_BY_TOML = {k.toml: k for k in KEYS}
# Read by make alone (its own variables); accepted in .env, never a setting of the CLI.
MAKE_ONLY = frozenset({"VENV", "PYTHON", "PYTEST_ARGS"})

_LINE = re.compile(r"(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)")
_SECRETISH = re.compile(r"key|token|secret|password|credential", re.IGNORECASE)
_BARE = re.compile(r"[^\s'\"`$\\#]*")  # an unquoted value: no spaces, quotes, expansions


class SettingsError(ValueError):
    """A settings file says something we do not understand; the message names file and line."""


@dataclass(frozen=True, slots=True)
class Settings:
    base_image: str = DEFAULT_BASE_IMAGE
    extra_ca_cert: Path | None = None
    image_tag: str = DEFAULT_IMAGE_TAG
    runtime: str = DEFAULT_RUNTIME
    # Where each value came from ("environment", a file, "default"), for `ironcurtain settings`.
    sources: tuple[tuple[str, str], ...] = ()
    builtin_budgets: str = ""

    def as_env(self) -> dict[str, str]:
        """The settings under their environment names (empty for no extra CA)."""
        return {
            "BASE_IMAGE": self.base_image,
            "EXTRA_CA_CERT": str(self.extra_ca_cert or ""),
            "IRONCURTAIN_IMAGE_TAG": self.image_tag,
            "IRONCURTAIN_RUNTIME": self.runtime,
            "IRONCURTAIN_BUILTIN_BUDGETS": self.builtin_budgets,
        }


def _unquote(raw: str, where: str) -> str:
    text = raw.strip()
    if text[:1] in ("'", '"'):
        quote = text[0]
        end = text.find(quote, 1)
        rest = text[end + 1 :].strip() if end > 0 else None
        if end < 0 or (rest and not rest.startswith("#")):
            raise SettingsError(f"{where}: unbalanced quote or text after the closing quote")
        inner = text[1:end]
        if quote == '"' and any(c in inner for c in '\\$`"'):
            raise SettingsError(f"{where}: escapes and $-expansions are not supported")
        return inner
    value = re.sub(r"\s+#.*$", "", text)  # `KEY=value  # comment`
    if not _BARE.fullmatch(value):
        raise SettingsError(f"{where}: quote a value with spaces; $, \\ and ` are not supported")
    return value


def parse_dotenv(text: str, source: str = ".env") -> dict[str, str]:
    """`.env`: KEY=VALUE lines (optionally `export `), blank lines, `#` comments, quotes."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{source}:{number}"
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.fullmatch(stripped)
        if match is None:
            raise SettingsError(f"{where}: not a KEY=VALUE line: {stripped[:60]!r}")
        key = match["key"]
        if key not in _BY_ENV and key not in MAKE_ONLY:
            raise SettingsError(f"{where}: unknown setting {key}{_secret_hint(key)}")
        if key in values:
            raise SettingsError(f"{where}: {key} is set twice")
        values[key] = _unquote(match["value"], where)
    return {k: v for k, v in values.items() if k in _BY_ENV}


# Sections of the user config file that are tables, not string settings: each has its module.
TABLES = frozenset({"prices", "session", "budget"})  # config/prices.py, config/user.py


def parse_user_config(text: str, source: str = "config.toml") -> dict[str, str]:
    """The user config file: a flat TOML table of string settings, under their toml names
    (and the structured sections of TABLES, left to user_table)."""
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{source}: not valid TOML: {exc}") from None
    values: dict[str, str] = {}
    for name, value in table.items():
        if name in TABLES:
            continue  # a structured section, read by its own module (user_table)
        key = _BY_TOML.get(name)
        if key is None:
            raise SettingsError(f"{source}: unknown setting {name!r}{_secret_hint(name)}")
        if not isinstance(value, str):
            raise SettingsError(f"{source}: {name} must be a string")
        values[key.env] = value
    return values


def resolve(
    environ: Mapping[str, str],
    user: Mapping[str, str] | None = None,
    dotenv: Mapping[str, str] | None = None,
    user_source: str = "user config",
    dotenv_source: str = ".env",
) -> Settings:
    """Environment > user config > .env > default, per key; an empty value counts as unset."""
    layers = (
        ("environment", environ),
        (user_source, user or {}),
        (dotenv_source, dotenv or {}),
    )
    chosen: dict[str, str] = {}
    sources: list[tuple[str, str]] = []
    for key in KEYS:
        for source, layer in layers:
            value = layer.get(key.env, "").strip()
            if value:
                chosen[key.env] = value
                sources.append((key.env, source))
                break
        else:
            chosen[key.env] = key.default
            sources.append((key.env, "default"))
    extra = chosen["EXTRA_CA_CERT"]
    return Settings(
        base_image=chosen["BASE_IMAGE"],
        extra_ca_cert=Path(extra) if extra else None,
        image_tag=chosen["IRONCURTAIN_IMAGE_TAG"],
        runtime=chosen["IRONCURTAIN_RUNTIME"],
        sources=tuple(sources),
        builtin_budgets=chosen["IRONCURTAIN_BUILTIN_BUDGETS"],
    )


def user_config_path(environ: Mapping[str, str]) -> Path | None:
    base = environ.get("XDG_CONFIG_HOME") or (
        str(Path(environ["HOME"]) / ".config") if environ.get("HOME") else ""
    )
    return Path(base) / USER_CONFIG if base else None


def load(environ: Mapping[str, str], checkout: Path | None) -> Settings:
    """Read the user config file and the checkout's `.env` (each optional) and resolve."""
    user: dict[str, str] = {}
    user_file = user_config_path(environ)
    if user_file is not None and user_file.is_file():
        user = parse_user_config(user_file.read_text(), str(user_file))
    dotenv: dict[str, str] = {}
    dotenv_file = checkout / ".env" if checkout is not None else None
    if dotenv_file is not None and dotenv_file.is_file():
        dotenv = parse_dotenv(dotenv_file.read_text(), str(dotenv_file))
    return resolve(environ, user, dotenv, str(user_file), str(dotenv_file))


def user_table(environ: Mapping[str, str], name: str) -> tuple[object, str]:
    """A structured section of the user config file (None when absent) and where it is."""
    assert name in TABLES
    user_file = user_config_path(environ)
    if user_file is None or not user_file.is_file():
        return None, str(user_file)
    try:
        table = tomllib.loads(user_file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{user_file}: not valid TOML: {exc}") from None
    return table.get(name), str(user_file)


def _secret_hint(name: str) -> str:
    known = ", ".join([*_BY_ENV, *sorted(MAKE_ONLY)] if name.isupper() else _BY_TOML)
    hint = f" (known: {known})"
    if _SECRETISH.search(name):
        hint += "; real keys never go in a settings file: use the key store (ironcurtain keys set)"
    return hint
