"""Which registries the host's own package tools use: pure parsers over config text and output.

pip: `pip config list` output (`global.index-url='URL'`) and PIP_INDEX_URL / PIP_EXTRA_INDEX_URL
(pip itself reads its config files). npm: `npm config get registry` output (npm reads .npmrc;
its auth lines are never asked for: a token stays on the host and is configured as a secret
file). apt: one-line `deb [opts] URI SUITE COMP...` lists and deb822 `.sources` stanzas.

Every parser takes text and returns URLs or sources; reading files and running commands is done
by `host_registries.adopt_from_host`, so the parsers are tested (Hypothesis) without a host.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass

_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class AptSource:
    uri: str  # e.g. https://mirror.example.internal/debian
    suites: tuple[str, ...]
    components: tuple[str, ...]
    options: tuple[tuple[str, str], ...] = ()  # e.g. (("signed-by", "/usr/share/keyrings/x.gpg"),)


def _urls(text: str) -> list[str]:
    """Whitespace-separated values that are http(s) URLs; anything else is ignored."""
    return [word for word in text.split() if _URL.match(word)]


def pip_config_list(output: str) -> list[str]:
    """`pip config list` output -> index URLs, the index-url first, then extra-index-urls."""
    index: list[str] = []
    extra: list[str] = []
    for line in output.splitlines():
        key, sep, raw = line.partition("=")
        if not sep:
            continue
        name = key.strip().rpartition(".")[2]
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = raw.strip().strip("'\"")
        if not isinstance(value, str):
            continue
        if name == "index-url":
            index = _urls(value)[:1] or index
        elif name == "extra-index-url":
            extra += _urls(value)
    return _unique(index + extra)


def pip_env(env: Mapping[str, str]) -> list[str]:
    """PIP_INDEX_URL and PIP_EXTRA_INDEX_URL (space-separated) -> index URLs."""
    return _unique(
        _urls(env.get("PIP_INDEX_URL", ""))[:1] + _urls(env.get("PIP_EXTRA_INDEX_URL", ""))
    )


def npm_registry_output(output: str) -> list[str]:
    """`npm config get registry` output -> [URL] (or [] for anything but one URL)."""
    return _urls(output.strip())[:1] if len(output.split()) == 1 else []


def apt_one_line(text: str) -> list[AptSource]:
    """sources.list text (one-line format) -> `deb` sources (deb-src and comments skipped)."""
    sources = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        options: list[tuple[str, str]] = []
        match = re.match(r"^(deb)\s+\[([^\]]*)\]\s+(.*)$", line)
        if match:
            for option in match.group(2).split():
                name, _, value = option.partition("=")
                options.append((name.lower(), value))
            rest = match.group(3).split()
        else:
            words = line.split()
            if not words or words[0] != "deb":
                continue
            rest = words[1:]
        if len(rest) < 2 or not _URL.match(rest[0]):
            continue
        suite, components = rest[1], tuple(rest[2:])
        if not suite.endswith("/") and not components:
            continue  # a distribution needs components; only "flat" repositories (dir/) do not
        sources.append(AptSource(rest[0], (suite,), components, tuple(options)))
    return sources


def apt_deb822(text: str) -> list[AptSource]:
    """A deb822 `.sources` file -> `deb` sources (stanzas with `Enabled: no` skipped)."""
    sources = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        current = ""
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0] in " \t" and current:
                fields[current] += " " + line.strip()
                continue
            name, sep, value = line.partition(":")
            if not sep:
                continue
            current = name.strip().lower()
            fields[current] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").strip().lower() in ("no", "false", "0"):
            continue
        suites = tuple(fields.get("suites", "").split())
        components = tuple(fields.get("components", "").split())
        if not suites or (not components and not all(s.endswith("/") for s in suites)):
            continue
        options = tuple(
            (name, " ".join(fields[name].split()))
            for name in ("signed-by", "trusted", "arch")
            if name in fields and not fields[name].startswith("-----")  # embedded keys stay
        )
        for uri in fields.get("uris", "").split():
            if _URL.match(uri):
                sources.append(AptSource(uri, suites, components, options))
    return sources


def _unique(urls: list[str]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for url in urls:
        key = url.rstrip("/").lower()
        if key not in seen:
            seen.add(key)
            out.append(url)
    return out
