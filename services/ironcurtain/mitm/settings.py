"""The proxy's settings: one typed object, parsed once from a YAML/JSON file.

This is the entry point session orchestration uses (see docs/mitm.md):

    session: "s-1234"                       # names the session in every audit line
    listen: {host: 0.0.0.0, port: 3128}
    ca_dir: /run/ironcurtain/ca             # ca.pem + ca-key.pem (0600), from `ironcurtain ca init`
    audit: /var/log/ironcurtain/mitm.jsonl  # one JSON line per decision
    audit_key: /run/secrets/audit_key_mitm  # the audit chain's key (optional: tests)
    providers_file: /etc/ironcurtain/providers.yaml   # optional: add or replace providers
    keys:                                   # enabled providers: fake key + real key FILE
      anthropic: {fake: "sk-ant-api03-...", real_file: /run/secrets/anthropic_api_key}
      claude-platform: {}                   # auth: none providers need no key
    # or, for a Claude subscription (docs/mitm.md, "Subscriptions"): a fake OAuth token and
    # the host's token socket instead of a real key file
    #  anthropic: {fake: "sk-ant-oat01-...", oauth_socket: /run/ironcurtain/oauth/token.sock}
    budget: {tokens: 1000000, requests: null, seconds: 1800, cost_usd: 5}
    prices:                                 # the user's own, before the built-in table
      anthropic: [{model: "claude-opus-4-5*", input: 5.0, output: 25.0}]
    limits: {max_body_bytes: 10485760, max_header_bytes: 32768, header_timeout_s: 10}
    upstream:                               # tests and air-gapped mirrors only
      api.anthropic.com: {address: "127.0.0.1:8443", ca_file: /path/test-ca.pem}
    registries:                             # package registries, see docs/registries.md
      quarantine_days: 2
      deny: [some-package]
      list: [{name: pip, kind: pypi, url: "https://pypi.example.internal/simple"}]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ..config import prices as prices_mod
from . import providers as providers_mod
from . import registries as registries_mod
from .budget import Limits
from .fake_keys import same
from .providers import Auth, ConfigError, Price, Provider

DEFAULT_PORT = 3128


@dataclass(frozen=True, slots=True)
class Override:
    """Send a host's traffic to another address (still verifying TLS for the host's name)."""

    host: str
    port: int
    ca_file: Path | None = None


@dataclass(frozen=True, slots=True)
class Tuning:
    max_body_bytes: int = 10 * 1024 * 1024
    max_header_bytes: int = 32 * 1024
    header_timeout_s: float = 10.0  # whole request head (and CONNECT, and TLS handshake)
    idle_timeout_s: float = 120.0  # between requests on a kept-alive connection
    body_timeout_s: float = 60.0
    connect_timeout_s: float = 10.0  # to the upstream
    response_timeout_s: float = 300.0  # upstream silence before 504 / abort
    pool_size: int = 32  # idle upstream connections kept per host
    max_connections: int = 1024  # agent connections at once; more are refused (503)
    tls_buffer_bytes: int = 32 * 1024  # asyncio's TLS read buffer per connection
    refusals_per_s: float = 20.0  # refusals audited per second, sustained (throttle.py)
    refusals_burst: int = 200  # refusals audited at once before the rate applies


@dataclass(frozen=True, slots=True)
class Settings:
    session: str
    ca_dir: Path
    audit_path: Path
    providers: Mapping[str, Provider]  # the enabled ones only
    fake_keys: Mapping[str, str]  # provider -> fake key the agent holds
    real_key_files: Mapping[str, Path]  # provider -> file holding the real key
    # provider -> the host's token socket (a subscription: the real token is asked, not read)
    oauth_sockets: Mapping[str, Path] = field(default_factory=dict)
    listen_host: str = "0.0.0.0"  # noqa: S104 - a container port, reached via the sidecar only
    listen_port: int = DEFAULT_PORT
    budget: Limits = field(default_factory=Limits)
    tuning: Tuning = field(default_factory=Tuning)
    upstream: Mapping[str, Override] = field(default_factory=dict)
    extra_ca_file: Path | None = None  # trusted for all upstreams besides the system CAs
    registries: registries_mod.RegistrySettings = field(
        default_factory=registries_mod.RegistrySettings
    )  # package registries (docs/registries.md), served by depot.py
    audit_key_file: Path | None = None  # the audit chain's key; None: this process's only

    def provider_for(self, host: str) -> Provider | None:
        for provider in self.providers.values():
            if host in provider.hosts:
                return provider
        return None

    @property
    def hosts(self) -> frozenset[str]:
        providers = frozenset(h for p in self.providers.values() for h in p.hosts)
        return providers | self.registries.hosts


def _address(text: str) -> tuple[str, int]:
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"upstream address {text!r}: expected host:port")
    return host.strip("[]"), int(port)


def parse(doc: Mapping[str, Any], base: Path = Path()) -> Settings:
    """A settings document -> Settings; raise ConfigError naming the field on any problem."""
    if not isinstance(doc, Mapping):
        raise ConfigError("settings must be a mapping")

    def path(value: Any) -> Path:
        return base / Path(str(value))

    try:
        extra = doc.get("providers_file")
        known = providers_mod.load(path(extra) if extra else None)
        keys = doc.get("keys") or {}
        if not keys:
            raise ConfigError("keys: enable at least one provider")
        enabled: dict[str, Provider] = {}
        fakes: dict[str, str] = {}
        reals: dict[str, Path] = {}
        sockets: dict[str, Path] = {}
        for name, entry in keys.items():
            if name not in known:
                raise ConfigError(f"keys: unknown provider {name!r}")
            provider = known[name]
            enabled[name] = provider
            if provider.auth is Auth.NONE:
                continue
            entry = entry or {}
            if "oauth_socket" in entry:
                sockets[name] = path(entry["oauth_socket"])
                fakes[name] = _oauth_fake(name, provider, entry)
                continue
            fake, real = entry.get("fake"), entry.get("real_file")
            if not fake or not real:
                raise ConfigError(f"keys.{name}: needs both 'fake' and 'real_file'")
            if not str(fake).startswith(provider.key_prefix):
                raise ConfigError(f"keys.{name}: fake key must start with {provider.key_prefix}")
            fakes[name] = str(fake)
            reals[name] = path(real)
        enabled = _priced(enabled, doc.get("prices"), frozenset(known))
        for a, fa in fakes.items():
            for b, fb in fakes.items():
                if a < b and same(fa, fb):
                    raise ConfigError(f"keys: {a} and {b} share a fake key")
        listen = doc.get("listen") or {}
        budget = doc.get("budget") or {}
        unknown = set(budget) - {"tokens", "requests", "seconds", "cost_usd"}
        if unknown:
            raise ConfigError(f"budget: unknown field(s) {', '.join(sorted(unknown))}")
        limits = Limits(**budget)
        tuning = Tuning(**(doc.get("limits") or {}))
        upstream = {}
        for host, entry in (doc.get("upstream") or {}).items():
            addr, port = _address(entry["address"])
            ca_file = entry.get("ca_file")
            upstream[str(host)] = Override(addr, port, path(ca_file) if ca_file else None)
        extra_ca = doc.get("extra_ca_file")
        registries = registries_mod.parse(doc.get("registries"), base)
        clash = registries.hosts & {h for p in enabled.values() for h in p.hosts}
        if clash:
            names = ", ".join(sorted(clash))
            raise ConfigError(f"registries: host(s) {names} belong to a provider")
        return Settings(
            session=str(doc.get("session") or "default"),
            ca_dir=path(doc["ca_dir"]),
            audit_path=path(doc["audit"]),
            providers=enabled,
            fake_keys=fakes,
            real_key_files=reals,
            oauth_sockets=sockets,
            listen_host=str(listen.get("host", "0.0.0.0")),  # noqa: S104
            listen_port=int(listen.get("port", DEFAULT_PORT)),
            budget=limits,
            tuning=tuning,
            upstream=upstream,
            extra_ca_file=path(extra_ca) if extra_ca else None,
            registries=registries,
            audit_key_file=path(doc["audit_key"]) if doc.get("audit_key") else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"settings: {exc!r}") from None


def _priced(
    enabled: dict[str, Provider], raw: object, known: frozenset[str]
) -> dict[str, Provider]:
    """The user's prices (config/prices.py) before each provider's built-in ones: first wins."""
    if raw is None:
        return enabled
    try:
        table = prices_mod.parse(raw, known)
    except prices_mod.PriceError as exc:
        raise ConfigError(str(exc)) from None
    for name, entries in table.items():
        if name in enabled:
            own = tuple(Price(e["model"], e["input"], e["output"]) for e in entries)
            enabled[name] = replace(enabled[name], prices=own + enabled[name].prices)
    return enabled


def _oauth_fake(name: str, provider: Provider, entry: Mapping[str, Any]) -> str:
    """A subscription's fake: an OAuth token of the provider's shape, and no real key file."""
    if provider.oauth is None:
        raise ConfigError(f"keys.{name}: {name} has no subscription login (oauth)")
    if set(entry) != {"fake", "oauth_socket"}:
        raise ConfigError(f"keys.{name}: a subscription needs exactly 'fake' and 'oauth_socket'")
    fake = str(entry["fake"])
    if not fake.startswith(provider.oauth.token_prefix):
        raise ConfigError(f"keys.{name}: fake token must start with {provider.oauth.token_prefix}")
    return fake


def load(file: Path) -> Settings:
    try:
        doc = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML/JSON: {exc}") from None
    return parse(doc, base=file.parent)


def read_real_keys(settings: Settings) -> dict[str, str]:
    """Read each real key from its secret file; refuse empty files and fakes used as reals."""
    reals: dict[str, str] = {}
    for name, file in settings.real_key_files.items():
        try:
            key = file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"real key for {name}: cannot read {file}: {exc.strerror}") from None
        if not key:
            raise ConfigError(f"real key for {name}: {file} is empty")
        if any(same(key, fake) for fake in settings.fake_keys.values()):
            raise ConfigError(f"real key for {name}: {file} holds a fake key")
        reals[name] = key
    return reals
