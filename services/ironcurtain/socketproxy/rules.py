"""The allowlist: exact method + path + query + API version rules from the settings. Pure, no I/O.

Every path pattern is anchored at both ends, case-sensitive, and admits one optional API version
prefix from the rule's floor to the engine's own version (`/v1.41`), because Docker clients send
one; a path without a prefix is answered at the engine's version. Anything else — `//`, `..`,
percent-encodings, a second prefix, a trailing slash, `/v1.27` where 1.27 widens the answer —
matches no rule and is refused.

Each rule also lists the query parameters it takes and what each value may be; the proxy (a Lua
action in the image) checks the client's query against that list and forwards only a query it
rebuilt from the checked values, never the raw string.

Container-scoped endpoints name the container in the path; they are served only for the declared
visible names, or for a full 64-hex ID once the engine confirms it is one of them. List and event
endpoints that would show every container carry filters the proxy owns (`owned`): a client's
filter on the same key may only narrow them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import Enum

from .settings import Settings

# Below these versions the engine answers with shapes that show more (see docs/isolation.md).
FLOOR = (
    1,
    25,
)  # legacy inspect/list/events shapes before 1.25 are compatibility code we never read
NETWORKS_FLOOR = (1, 28)  # before 1.28, GET /networks lists every endpoint of every network


class Backend(Enum):
    API = "api"  # short request/response
    STREAM = "stream"  # long-lived responses: logs --follow, stats, events
    INSPECT = "inspect"  # container inspect: the body is buffered and its Env arrays stripped
    BY_ID = "by-id"  # a full container ID: the engine is asked whose it is, then routed by name


class Kind(Enum):
    """What a query value may be; the Lua side checks and canonicalises each kind."""

    BOOL = "bool"  # 0 1 true false (any case) -> 1 or 0
    UINT = "uint"  # up to 9 decimal digits
    LIMIT = "limit"  # -1 or a uint
    TIME = "time"  # Unix seconds with an optional fraction, as the CLI and SDK send
    TAIL = "tail"  # "all" or a uint
    SIGNAL = "signal"  # a signal name or number: [A-Z0-9]{1,12}
    FILTERS = "filters"  # a JSON filter object; only the listed keys, each a list of strings


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: Kind
    keys: tuple[str, ...] = ()  # FILTERS only: the filter keys a client may send

    def spec(self) -> str:
        keys = "=" + "|".join(self.keys) if self.keys else ""
        return f"{self.name}:{self.kind.value}{keys}"


@dataclass(frozen=True, slots=True)
class Rule:
    name: str  # one word, used as the HAProxy variable value and in docs
    methods: tuple[str, ...]
    path: str  # the path after the optional version prefix, as a regex body (no anchors)
    backend: Backend = Backend.API
    params: tuple[Param, ...] = ()  # the only query parameters accepted (none by default)
    # Filters the proxy puts in the forwarded query whatever the client sent: key -> marker.
    # "@exact": a name regex matching exactly the visible names (the engine's name filter is a
    # regex); "@ids": the visible containers' full IDs, read from the engine at request time (the
    # engine's container filter on events matches by prefix, so names would let web-1 see web-10);
    # any other value: that literal.
    owned: tuple[tuple[str, str], ...] = ()
    versions: str = r"(/v1\.[0-9]{1,2})?"  # set by build() from the floor and the engine

    @property
    def pattern(self) -> str:
        return f"^{self.versions}{self.path}$"

    def allows(self, method: str, path: str) -> bool:
        """The same decision HAProxy takes on method and path (used by the tests and the docs)."""
        return method in self.methods and re.fullmatch(self.pattern, path) is not None

    def spec(self) -> str:
        """The query allowlist as the Lua action reads it: `name:kind[=key|key],...`."""
        return ",".join(param.spec() for param in self.params)

    def owned_spec(self) -> str:
        return ";".join(f"{key}={value}" for key, value in self.owned)


@dataclass(frozen=True, slots=True)
class ApiRange:
    """The engine's API versions (MinAPIVersion, ApiVersion of GET /version)."""

    low: tuple[int, int]
    high: tuple[int, int]


def version_prefix(floor: tuple[int, int], engine: ApiRange) -> str | None:
    """The optional `/v1.NN` prefix for versions floor..engine, or None when none is left."""
    low = max(floor, engine.low)
    if low > engine.high or low[0] != 1 or engine.high[0] != 1:
        return None  # API 2.x does not exist yet; refuse rather than guess what it answers
    minors = "|".join(str(minor) for minor in range(low[1], engine.high[1] + 1))
    return rf"(/v1\.({minors}))?"


def _literal(name: str) -> str:
    """A container name as a regex literal: of Docker's name characters only '.' is special."""
    return name.replace(".", r"\.")


def _names(names: tuple[str, ...]) -> str:
    return "(" + "|".join(_literal(name) for name in names) + ")"


BOOL, UINT, TIME = Kind.BOOL, Kind.UINT, Kind.TIME
LOGS = (
    Param("follow", BOOL),
    Param("stdout", BOOL),
    Param("stderr", BOOL),
    Param("since", TIME),
    Param("until", TIME),
    Param("timestamps", BOOL),
    Param("tail", Kind.TAIL),
    # never `details`: it prints the attributes a log driver was given, environment included
)
LIST = (
    Param("all", BOOL),
    Param("limit", Kind.LIMIT),
    Param("size", BOOL),
    Param("trunc_cmd", BOOL),  # docker-py sends it; the engine ignores it
    # a client's name filter must name a visible container exactly; the rest only narrow (AND);
    # never before/since: they resolve a container reference, an oracle for hidden names
    Param("filters", Kind.FILTERS, ("name", "status", "label", "exited", "health", "id")),
)
EVENTS = (
    Param("since", TIME),
    Param("until", TIME),
    Param("filters", Kind.FILTERS, ("container", "type", "event", "label")),
)


def _rules(settings: Settings) -> list[tuple[Rule, tuple[int, int]]]:
    rules: list[tuple[Rule, tuple[int, int]]] = []
    get = ("GET",)

    def add(rule: Rule, floor: tuple[int, int] = FLOOR) -> None:
        rules.append((rule, floor))

    if settings.on("PING"):
        add(Rule("ping", ("GET", "HEAD"), r"/_ping"))
    if settings.on("VERSION"):
        add(Rule("version", get, r"/version"))
    if settings.on("INFO"):
        add(Rule("info", get, r"/info"))
    if settings.on("IMAGES"):
        keys: tuple[str, ...] = ("dangling", "label", "reference", "before", "since")
        params = (Param("all", BOOL), Param("digests", BOOL), Param("filters", Kind.FILTERS, keys))
        add(Rule("images", get, r"/images/json", params=params))
    if settings.on("NETWORKS"):
        keys = ("dangling", "driver", "id", "label", "name", "scope", "type")
        add(
            Rule("networks", get, r"/networks", params=(Param("filters", Kind.FILTERS, keys),)),
            NETWORKS_FLOOR,
        )
    if settings.on("VOLUMES"):
        keys = ("dangling", "driver", "label", "name")
        add(Rule("volumes", get, r"/volumes", params=(Param("filters", Kind.FILTERS, keys),)))
    # Without a visible container there is nothing a filter could narrow to: refuse, never list all.
    visible = settings.visible
    if settings.on("EVENTS") and visible:
        owned = (("type", "container"), ("container", "@ids"))
        add(Rule("events", get, r"/events", Backend.STREAM, EVENTS, owned))
    if settings.on("CONTAINERS") and visible:
        one = r"/containers/" + _names(visible)
        stats = (Param("stream", BOOL), Param("one-shot", BOOL))
        for rule in (
            Rule("list", get, r"/containers/json", params=LIST, owned=(("name", "@exact"),)),
            Rule("inspect", get, one + r"/json", Backend.INSPECT, (Param("size", BOOL),)),
            Rule("logs", get, one + r"/logs", Backend.STREAM, LOGS),
            Rule("stats", get, one + r"/stats", Backend.STREAM, stats),
            # never ps_args: the engine runs `ps ps_args` on the host (`aeww` prints environments)
            Rule("top", get, one + r"/top"),
            # Clients address containers by the full ID they read from inspect (the docker CLI's
            # `logs`, the SDK's `list`): served only once the engine confirms a visible name, then
            # checked as the rule of that endpoint.
            Rule("byid", get, r"/containers/[0-9a-f]{64}/(json|logs|stats|top)", Backend.BY_ID),
        ):
            add(rule)
    if settings.on("POST") and visible:
        one = r"/containers/" + _names(visible)
        post = ("POST",)
        wait = (Param("t", UINT),)
        if settings.on("ALLOW_START"):
            add(Rule("start", post, one + r"/start"))
        if settings.on("ALLOW_STOP") or settings.on("ALLOW_RESTARTS"):
            add(Rule("stop", post, one + r"/stop", params=wait))
        if settings.on("ALLOW_RESTARTS"):
            add(Rule("restart", post, one + r"/restart", params=wait))
            add(Rule("kill", post, one + r"/kill", params=(Param("signal", Kind.SIGNAL),)))
    return rules


def build(settings: Settings, engine: ApiRange) -> tuple[Rule, ...]:
    """The rules the engine's version leaves; one whose floor it misses is left out."""
    built = []
    for rule, floor in _rules(settings):
        versions = version_prefix(floor, engine)
        if versions is not None:
            built.append(replace(rule, versions=versions))
    return tuple(built)


def omitted(settings: Settings, engine: ApiRange) -> tuple[str, ...]:
    """Rules switched on that the engine is too old (or too new) to serve safely."""
    return tuple(rule.name for rule, f in _rules(settings) if version_prefix(f, engine) is None)


def decide(rules: tuple[Rule, ...], method: str, path: str) -> Rule | None:
    """The first rule that allows METHOD PATH, or None (refused)."""
    return next((rule for rule in rules if rule.allows(method, path)), None)
