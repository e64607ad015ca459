"""Providers as data: parsed once from YAML/JSON into frozen objects, validated at the edge."""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .paths import Endpoint

DEFAULT_HEADERS = ("accept", "content-type", "user-agent")

if TYPE_CHECKING:
    from .bounds import Spec

_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class Auth(Enum):
    X_API_KEY = "x-api-key"
    BEARER = "bearer"
    X_GOOG_API_KEY = "x-goog-api-key"
    NONE = "none"

    @property
    def header(self) -> str | None:
        """The request header that carries the key (lower-case), None for no auth."""
        return {"bearer": "authorization", "none": None}.get(self.value, self.value)


class ErrorShape(Enum):
    ANTHROPIC = "anthropic"
    OPENAI = "openai"
    GOOGLE = "google"


@dataclass(frozen=True, slots=True)
class Price:
    model: str  # glob
    input: float  # USD per million tokens
    output: float


@dataclass(frozen=True, slots=True)
class OAuth:
    """A provider's subscription login (docs/mitm.md, "Subscriptions"): the shape of its
    tokens and where the host refreshes them. The agent never reaches `token_url`."""

    token_prefix: str  # access tokens (the agent's fake has the same prefix)
    refresh_prefix: str
    token_url: str  # https://HOST/PATH, called by the host's `ironcurtain run`, never the agent
    client_id: str
    beta: str  # the anthropic-beta value clients send with such a token

    @property
    def token_host(self) -> str:
        return self.token_url.split("/", 3)[2]


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    hosts: tuple[str, ...]
    auth: Auth
    key_prefix: str
    error_shape: ErrorShape
    endpoints: tuple[Endpoint, ...]
    local: tuple[tuple[Endpoint, bytes], ...]  # endpoint -> JSON body answered by the proxy
    strip_server_tools: bool
    prices: tuple[Price, ...]
    accept_bearer: bool = False  # also take the fake key as "Authorization: Bearer" (SDKs do)
    client_tool_types: tuple[str, ...] = ("custom",)  # tool types that run on the agent's side
    # Request headers forwarded besides the ones we set (exact names, or a prefix ending "*");
    # every other header is dropped, credential-like ones are refused (headers.py).
    headers: tuple[str, ...] = DEFAULT_HEADERS
    # How each endpoint's spend is bounded (bounds.py); None: not billed. Every endpoint has one.
    meter: tuple[tuple[Endpoint, Spec | None], ...] = ()
    oauth: OAuth | None = None  # a subscription login, if the provider has one
    # model -> its Price, filled as models are seen (price() runs twice per request; keying a
    # shared cache by the prices tuple hashed every Price each time). Not an init field, so
    # dataclasses.replace() with other prices starts an empty one.
    _priced: dict[str, Price] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def meter_for(self, endpoint: Endpoint) -> Spec | None:
        for known, spec in self.meter:
            if known == endpoint:
                return spec
        raise KeyError(f"{self.name}: no meter entry for {endpoint}")  # parse() prevents this

    @property
    def key_headers(self) -> tuple[str, ...]:
        """Request headers that may carry the fake key; the first is also used upstream."""
        header = self.auth.header
        if header is None:
            return ()
        if self.accept_bearer and header != "authorization":
            return (header, "authorization")
        return (header,)

    def price(self, model: str | None) -> Price:
        model = model or ""
        found = self._priced.get(model)
        if found is None:
            found = _price(self.prices, model)
            if len(self._priced) < _PRICED_MODELS:  # bounded: model names come from vendors
                self._priced[model] = found
        return found


_PRICED_MODELS = 256


@functools.lru_cache(maxsize=256)
def _price(prices: tuple[Price, ...], model: str) -> Price:
    # Cached: looked up at admission and at settlement of every request, through several globs.
    for price in prices:
        if fnmatch.fnmatchcase(model, price.model):
            return price
    return Price("*", 0.0, 0.0) if not prices else prices[-1]


def _names(text: str) -> frozenset[str]:
    """A set of names written as one space-separated string (easier to read in long lists)."""
    return frozenset(text.split())


class ConfigError(ValueError):
    """A provider file is malformed; the message names the provider and the field."""


def _parse_one(name: str, raw: Mapping[str, Any]) -> Provider:
    where = f"provider {name!r}"
    known = {"hosts", "auth", "key_prefix", "error_shape", "strip_server_tools", "endpoints"}
    extra = {"local", "prices", "accept_bearer", "client_tool_types", "headers", "meter", "oauth"}
    unknown = set(raw) - known - extra
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    try:
        hosts = tuple(str(h).lower() for h in raw["hosts"])
        auth = Auth(raw["auth"])
        shape = ErrorShape(raw.get("error_shape", "openai"))
        endpoints = tuple(_endpoint(e) for e in raw.get("endpoints") or ())
        local = tuple(
            (Endpoint.parse(e, body="any"), json.dumps(body, separators=(",", ":")).encode())
            for e, body in (raw.get("local") or {}).items()
        )
        prices = tuple(
            Price(str(p["model"]), float(p["input"]), float(p["output"]))
            for p in raw.get("prices") or ()
        )
        meter = _meter(endpoints, raw.get("meter") or {})
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if not hosts or any(not _HOST.match(h) for h in hosts):
        raise ConfigError(f"{where}: hosts must be DNS names (no IP literals, no ports)")
    prefix = str(raw.get("key_prefix", ""))
    if auth is not Auth.NONE and len(prefix) < 3:
        raise ConfigError(f"{where}: key_prefix of at least 3 characters is required")
    return Provider(
        name=name,
        hosts=hosts,
        auth=auth,
        key_prefix=prefix,
        error_shape=shape,
        endpoints=endpoints,
        local=local,
        strip_server_tools=bool(raw.get("strip_server_tools", False)),
        prices=prices,
        accept_bearer=bool(raw.get("accept_bearer", False)),
        client_tool_types=tuple(str(t) for t in raw.get("client_tool_types") or ("custom",)),
        headers=_headers(where, raw.get("headers")),
        meter=meter,
        oauth=_oauth(where, raw.get("oauth")),
    )


def _oauth(where: str, raw: object) -> OAuth | None:
    if raw is None:
        return None
    fields = {"token_prefix", "refresh_prefix", "token_url", "client_id", "beta"}
    if not isinstance(raw, Mapping) or set(raw) != fields:
        raise ConfigError(f"{where}: oauth needs exactly {', '.join(sorted(fields))}")
    spec = OAuth(**{k: str(v) for k, v in raw.items()})
    scheme, _, rest = spec.token_url.partition("://")
    host = rest.split("/", 1)[0]
    if scheme != "https" or not _HOST.match(host) or "/" not in rest:
        raise ConfigError(f"{where}: oauth.token_url must be https://HOST/PATH")
    if len(spec.token_prefix) < 3 or len(spec.refresh_prefix) < 3:
        raise ConfigError(f"{where}: oauth token prefixes need at least 3 characters")
    return spec


def _endpoint(raw: object) -> Endpoint:
    """`"METHOD /path"` or `{call: "METHOD /path", body: SHAPE, query: {name: [values]}}`."""
    if isinstance(raw, str):
        raw = {"call": raw}
    if not isinstance(raw, Mapping) or set(raw) - {"call", "body", "query"} or "call" not in raw:
        raise ValueError(f"endpoint {raw!r}: expected 'METHOD /path' or {{call, body, query}}")
    query = raw.get("query") or {}
    if not isinstance(query, Mapping):
        raise ValueError(f"endpoint {raw['call']!r}: query must map names to values")
    body = raw.get("body")
    if body is not None and body not in BODY_SHAPES:
        raise ValueError(f"endpoint {raw['call']!r}: unknown body shape {body!r}")
    endpoint = Endpoint.parse(str(raw["call"]), query, None if body is None else str(body))
    if not endpoint.body:
        raise ValueError(
            f"endpoint {raw['call']!r}: a {endpoint.method} endpoint needs a body shape"
        )
    return endpoint


def _meter(
    endpoints: tuple[Endpoint, ...], raw: Mapping[str, Any]
) -> tuple[tuple[Endpoint, Spec | None], ...]:
    """Each endpoint's meter entry; an endpoint without one is an error (allowlist: no default)."""
    from .bounds import parse_spec  # bounds -> errors -> providers: imported here, not at the top

    if not isinstance(raw, Mapping):
        raise ValueError("meter must map endpoints to 'free' or a bound")
    specs = {str(Endpoint.parse(k)): v for k, v in raw.items()}
    unknown = set(specs) - {str(e) for e in endpoints}
    if unknown:
        raise ValueError(f"meter: {', '.join(sorted(unknown))} is not an endpoint")
    table = []
    for endpoint in endpoints:
        if str(endpoint) not in specs:
            raise ValueError(
                f"meter: endpoint {endpoint} needs an entry ('free' if the vendor does not bill it)"
            )
        try:
            table.append((endpoint, parse_spec(specs[str(endpoint)])))
        except ValueError as exc:
            raise ValueError(f"meter {endpoint}: {exc}") from None
    return tuple(table)


# The body shapes shapes.py understands ("none": no body at all).
BODY_SHAPES = frozenset({"none", "anthropic-messages", "openai-chat", "openai-responses", "gemini"})
_HEADER_GLOB = re.compile(r"^[a-z0-9][a-z0-9_-]*\*?$")
# Set by us or framing: never taken from the agent, so never on a provider's list.
RESERVED_HEADERS = _names(
    "connection keep-alive proxy-connection proxy-authorization te trailer transfer-encoding "
    "upgrade expect host content-length accept-encoding cookie http2-settings"
)


def _headers(where: str, value: object) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_HEADERS
    if not isinstance(value, list):
        raise ConfigError(f"{where}: headers must be a list of names")
    from .headers import credential_like  # here: headers -> errors -> providers at import

    names = tuple(str(v).lower() for v in value)
    for name in names:
        if not _HEADER_GLOB.match(name) or name.rstrip("*") in RESERVED_HEADERS:
            raise ConfigError(f"{where}: header {name!r} cannot be forwarded from the agent")
        if credential_like(name.rstrip("*")):
            raise ConfigError(f"{where}: header {name!r} looks like a credential")
    return names


def parse(document: Mapping[str, Any]) -> dict[str, Provider]:
    """Parse `{"providers": {name: {...}}}` into providers; raise ConfigError when malformed."""
    table = document.get("providers") if isinstance(document, Mapping) else None
    if not isinstance(table, Mapping):
        raise ConfigError("expected a top-level 'providers' mapping")
    providers = {str(name): _parse_one(str(name), body or {}) for name, body in table.items()}
    _check_hosts_unique(providers)
    return providers


def load_text(text: str) -> dict[str, Provider]:
    """YAML (a superset of JSON) text -> providers."""
    try:
        return parse(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML/JSON: {exc}") from None


def builtin() -> dict[str, Provider]:
    return load_text(resources.files(__package__).joinpath("providers.yaml").read_text())


def load(extra: Path | None = None) -> dict[str, Provider]:
    """The built-in providers, with a user's file adding providers or replacing them by name."""
    providers = builtin()
    if extra is not None:
        providers.update(load_text(extra.read_text()))
        _check_hosts_unique(providers)
    return providers


def _check_hosts_unique(providers: Mapping[str, Provider]) -> None:
    seen: dict[str, str] = {}
    for provider in providers.values():
        for host in provider.hosts:
            if host in seen:
                raise ConfigError(f"host {host} is claimed by {seen[host]} and {provider.name}")
            seen[host] = provider.name
