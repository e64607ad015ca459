"""Package registries as configuration: which ones, merged with the host's, and the agent's side.

IronCurtain ships no registry names. By default it adopts what the user's own tools use on the
host (`host_registries.adopt_from_host`: pip's index URLs, npm's registry, apt's sources; the
merge is `adopted` here, pure), and a config can add,
remove or replace them (`plan`). The result goes into the MITM proxy's settings (`registries:`)
and into the agent's environment (`agent_environment`): the agent always reaches a registry as
`https://HOST/BASE` through the proxy, whatever scheme the proxy then uses upstream.

Plain HTTP upstream is accepted for apt only: apt verifies the signed Release file and every
index and package hash itself, so the transport adds no integrity (this is how apt is used on
most machines). The agent's leg is TLS in every case, and LLM providers stay HTTPS-only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import adopt
from .providers import ConfigError
from .quarantine import Rules

_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9._~+%:@!$&'()*,=-]+$")


MAX_FILE_BYTES = 256 * 1024 * 1024  # a file is held whole until its hash is checked
MAX_METADATA_BYTES = 64 * 1024 * 1024


class Kind(Enum):
    PYPI = "pypi"
    NPM = "npm"
    APT = "apt"


@dataclass(frozen=True, slots=True)
class Registry:
    name: str
    kind: Kind
    host: str  # DNS name; the agent reaches it as https://host (port 443, through the proxy)
    base: str = ""  # path prefix without a trailing slash, e.g. "/simple"
    scheme: str = "https"  # upstream scheme (http for apt only)
    port: int = 443  # upstream port
    token_file: Path | None = None  # host-side secret, sent upstream as Authorization: Bearer
    suites: tuple[str, ...] = ()  # apt: for the agent's sources list
    components: tuple[str, ...] = ()
    options: tuple[tuple[str, str], ...] = ()

    @property
    def agent_url(self) -> str:
        return f"https://{self.host}{self.base}"

    @property
    def upstream_url(self) -> str:
        default = 443 if self.scheme == "https" else 80
        port = "" if self.port == default else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}{self.base}"


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    registries: tuple[Registry, ...] = ()
    rules: Rules = field(default_factory=Rules)
    max_file_bytes: int = MAX_FILE_BYTES
    max_metadata_bytes: int = MAX_METADATA_BYTES
    inventory_path: Path | None = None

    @property
    def hosts(self) -> frozenset[str]:
        return frozenset(r.host for r in self.registries)

    def for_host(self, host: str) -> tuple[Registry, ...]:
        """The registries on `host`, longest base first (one host may serve several)."""
        return tuple(
            sorted((r for r in self.registries if r.host == host), key=lambda r: -len(r.base))
        )


def from_url(name: str, kind: Kind, url: str, **extra: Any) -> Registry:
    """A registry from its URL; raise ConfigError for an IP literal, userinfo or bad scheme."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not _HOST.match(host):
        raise ConfigError(f"registry {name!r}: {url!r} is not an http(s) URL with a DNS name")
    if parts.scheme == "http" and kind is not Kind.APT:
        raise ConfigError(
            f"registry {name!r}: plain HTTP is accepted for apt only (it checks signatures)"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(
            f"registry {name!r}: no credentials, query or fragment in the URL "
            "(put a token in token_file)"
        )
    base = parts.path.rstrip("/")
    if base and not all(_SEGMENT.match(s) for s in base[1:].split("/")):
        raise ConfigError(f"registry {name!r}: path {parts.path!r} is not a plain path")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Registry(name, kind, host, base, parts.scheme, port, **extra)


def parse_entry(entry: Mapping[str, Any], base: Path = Path()) -> Registry:
    known = {"name", "kind", "url", "token_file", "suites", "components", "options"}
    unknown = set(entry) - known
    name = str(entry.get("name") or "")
    if unknown:
        raise ConfigError(f"registry {name!r}: unknown field(s) {', '.join(sorted(unknown))}")
    try:
        kind = Kind(entry["kind"])
        url = str(entry["url"])
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"registry {name!r}: needs kind (pypi|npm|apt) and url: {exc}") from None
    token = entry.get("token_file")
    options = entry.get("options") or {}
    return from_url(
        name or kind.value,
        kind,
        url,
        token_file=base / str(token) if token else None,
        suites=tuple(str(s) for s in entry.get("suites") or ()),
        components=tuple(str(c) for c in entry.get("components") or ()),
        options=tuple((str(k), str(v)) for k, v in dict(options).items()),
    )


def parse(doc: Mapping[str, Any] | None, base: Path = Path()) -> RegistrySettings:
    """The proxy settings' `registries:` section -> RegistrySettings."""
    if not doc:
        return RegistrySettings()
    known = {"list", "quarantine_days", "allow", "deny", "max_file_bytes", "inventory"}
    unknown = set(doc) - known - {"max_metadata_bytes"}
    if unknown:
        raise ConfigError(f"registries: unknown field(s) {', '.join(sorted(unknown))}")
    registries = tuple(parse_entry(e, base) for e in doc.get("list") or ())
    names = [r.name for r in registries]
    if len(set(names)) != len(names):
        raise ConfigError("registries: names must be unique")
    seen: set[tuple[str, str]] = set()
    for r in registries:
        if (r.host, r.base) in seen:
            raise ConfigError(f"registries: {r.agent_url} is listed twice")
        seen.add((r.host, r.base))
    days = float(doc.get("quarantine_days", 2))
    if days < 0:
        raise ConfigError("registries.quarantine_days must be >= 0")
    inventory = doc.get("inventory")
    return RegistrySettings(
        registries=registries,
        rules=Rules(
            days,
            tuple(str(a) for a in doc.get("allow") or ()),
            tuple(str(d) for d in doc.get("deny") or ()),
        ),
        max_file_bytes=int(doc.get("max_file_bytes", MAX_FILE_BYTES)),
        max_metadata_bytes=int(doc.get("max_metadata_bytes", MAX_METADATA_BYTES)),
        inventory_path=base / str(inventory) if inventory else None,
    )


# ---- adoption (host side) --------------------------------------------------------------------


def adopted(
    pip_urls: Sequence[str], npm_urls: Sequence[str], apt_sources: Sequence[adopt.AptSource]
) -> list[Registry]:
    """Parsed host config -> registries, named pip, pip-2, npm, apt, apt-2, ... Bad URLs skipped."""
    out: list[Registry] = []

    def name(prefix: str, i: int) -> str:
        return prefix if i == 0 else f"{prefix}-{i + 1}"

    for i, url in enumerate(pip_urls):
        try:
            out.append(from_url(name("pip", i), Kind.PYPI, url))
        except ConfigError:
            continue
    for i, url in enumerate(npm_urls):
        try:
            out.append(from_url(name("npm", i), Kind.NPM, url))
        except ConfigError:
            continue
    merged: dict[str, Registry] = {}
    for source in apt_sources:
        try:
            reg = from_url("apt", Kind.APT, source.uri, options=source.options)
        except ConfigError:
            continue
        key = reg.upstream_url
        if key in merged:
            old = merged[key]
            merged[key] = replace(
                old,
                suites=old.suites + tuple(s for s in source.suites if s not in old.suites),
                components=old.components
                + tuple(c for c in source.components if c not in old.components),
            )
        else:
            merged[key] = replace(reg, suites=source.suites, components=source.components)
    for i, reg in enumerate(merged.values()):
        out.append(replace(reg, name=name("apt", i)))
    return out


def plan(found: Sequence[Registry], config: Mapping[str, Any] | None) -> list[Registry]:
    """Adopted registries changed by a config: `adopt: false` replaces, `remove`, `add`."""
    config = config or {}
    unknown = set(config) - {"adopt", "add", "remove"}
    if unknown:
        raise ConfigError(f"registries: unknown field(s) {', '.join(sorted(unknown))}")
    chosen = list(found) if config.get("adopt", True) else []
    removed = {str(x).rstrip("/") for x in config.get("remove") or ()}
    chosen = [
        r
        for r in chosen
        if r.name not in removed and r.host not in removed and r.agent_url not in removed
    ]
    for entry in config.get("add") or ():
        reg = parse_entry(entry)
        chosen = [r for r in chosen if (r.host, r.base) != (reg.host, reg.base)]
        chosen = [r for r in chosen if r.name != reg.name] + [reg]
    return chosen


def to_config(registries: Iterable[Registry]) -> list[dict[str, Any]]:
    """Registries -> the `registries.list` entries of the proxy's settings."""
    out = []
    for r in registries:
        entry: dict[str, Any] = {"name": r.name, "kind": r.kind.value, "url": r.upstream_url}
        if r.token_file:
            entry["token_file"] = str(r.token_file)
        if r.suites:
            entry["suites"] = list(r.suites)
        if r.components:
            entry["components"] = list(r.components)
        if r.options:
            entry["options"] = dict(r.options)
        out.append(entry)
    return out


# ---- the agent's side ------------------------------------------------------------------------


def agent_environment(registries: Iterable[Registry]) -> dict[str, str]:
    """Where pip, npm and apt in the agent find the registries (always https, via the proxy)."""
    env: dict[str, str] = {}
    pypi = [r.agent_url + "/" for r in registries if r.kind is Kind.PYPI]
    if pypi:
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        env["PIP_INDEX_URL"] = pypi[0]
        if pypi[1:]:
            env["PIP_EXTRA_INDEX_URL"] = " ".join(pypi[1:])
    npm = [r.agent_url + "/" for r in registries if r.kind is Kind.NPM]
    if npm:
        env["NPM_CONFIG_REGISTRY"] = npm[0]
        # npm's audit and update check would only be refused by the proxy: say so up front.
        env["NPM_CONFIG_AUDIT"] = "false"
        env["NPM_CONFIG_FUND"] = "false"
        env["NPM_CONFIG_UPDATE_NOTIFIER"] = "false"
    lines = []
    for r in registries:
        if r.kind is Kind.APT:
            opts = " ".join(f"{k}={v}" for k, v in r.options if k in ("signed-by", "trusted"))
            for suite in r.suites:
                words = ["deb", f"[{opts}]" if opts else "", r.agent_url, suite, *r.components]
                lines.append(" ".join(w for w in words if w))
    if lines:
        env["IRONCURTAIN_APT_SOURCES"] = "\n".join(lines)
    return env
