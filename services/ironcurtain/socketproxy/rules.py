"""The allowlist: exact method + path rules derived from the settings. Pure, no I/O.

Every path pattern is anchored at both ends, case-sensitive, and admits one optional well-formed
API version prefix (`/v1.41`), because Docker clients send one. Anything else — `//`, `..`,
percent-encodings, a second prefix, a trailing slash — matches no rule and is refused.

Container-scoped endpoints name the container in the path; they are served only for the declared
visible names, or for a full 64-hex ID once the engine confirms it is one of them (a Lua action in
the image). List and event endpoints that would show every container get a filter on exactly
those names put first in their query.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import quote

from .settings import Settings

VERSION_PREFIX = r"(/v1\.[0-9]{1,2})?"


class Backend(Enum):
    API = "api"  # short request/response
    STREAM = "stream"  # long-lived responses: logs --follow, stats, events
    INSPECT = "inspect"  # container inspect: the body is buffered and its Env arrays stripped
    BY_ID = "by-id"  # a full container ID: the engine is asked whose it is, then routed by name


@dataclass(frozen=True, slots=True)
class Rule:
    name: str  # one word, used as the HAProxy variable value and in docs
    methods: tuple[str, ...]
    path: str  # the path after the optional version prefix, as a regex body (no anchors)
    backend: Backend = Backend.API
    # When set, put first in the request's query: Docker reads the first value of a parameter, so
    # ours wins over anything the client sent (its other parameters, e.g. since/until, still work).
    query: str | None = None

    @property
    def pattern(self) -> str:
        return f"^{VERSION_PREFIX}{self.path}$"

    def allows(self, method: str, path: str) -> bool:
        """The same decision HAProxy takes (used by the tests and the docs)."""
        return method in self.methods and re.fullmatch(self.pattern, path) is not None


def _literal(name: str) -> str:
    """A container name as a regex literal: of Docker's name characters only '.' is special."""
    return name.replace(".", r"\.")


def _names(names: tuple[str, ...]) -> str:
    return "(" + "|".join(_literal(name) for name in names) + ")"


def _filters(key: str, values: list[str]) -> str:
    return quote(json.dumps({key: values}, separators=(",", ":")), safe="")


def container_list_query(names: tuple[str, ...]) -> str:
    """`GET /containers/json`, narrowed to the visible names (Docker's name filter is a regex)."""
    exact = [f"^/{_literal(name)}$" for name in names]
    return "all=1&filters=" + _filters("name", exact)


def events_query(names: tuple[str, ...]) -> str:
    return "filters=" + _filters("container", list(names))


def build(settings: Settings) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    get = ("GET",)
    if settings.on("PING"):
        rules.append(Rule("ping", ("GET", "HEAD"), r"/_ping"))
    if settings.on("VERSION"):
        rules.append(Rule("version", get, r"/version"))
    if settings.on("INFO"):
        rules.append(Rule("info", get, r"/info"))
    if settings.on("IMAGES"):
        rules.append(Rule("images", get, r"/images/json"))
    if settings.on("NETWORKS"):
        rules.append(Rule("networks", get, r"/networks"))
    if settings.on("VOLUMES"):
        rules.append(Rule("volumes", get, r"/volumes"))
    # Without a visible container there is nothing a filter could narrow to: refuse, never list all.
    visible = settings.visible
    if settings.on("EVENTS") and visible:
        rules.append(Rule("events", get, r"/events", Backend.STREAM, events_query(visible)))
    if settings.on("CONTAINERS") and visible:
        one = r"/containers/" + _names(visible)
        rules += [
            Rule("list", get, r"/containers/json", query=container_list_query(visible)),
            Rule("inspect", get, one + r"/json", Backend.INSPECT),
            Rule("logs", get, one + r"/logs", Backend.STREAM),
            Rule("stats", get, one + r"/stats", Backend.STREAM),
            Rule("top", get, one + r"/top"),
            # Clients address containers by the full ID they read from inspect (the docker CLI's
            # `logs`, the SDK's `list`): served only once the engine confirms a visible name.
            Rule("byid", get, r"/containers/[0-9a-f]{64}/(json|logs|stats|top)", Backend.BY_ID),
        ]
    if settings.on("POST") and visible:
        one = r"/containers/" + _names(visible)
        post = ("POST",)
        if settings.on("ALLOW_START"):
            rules.append(Rule("start", post, one + r"/start"))
        if settings.on("ALLOW_STOP") or settings.on("ALLOW_RESTARTS"):
            rules.append(Rule("stop", post, one + r"/stop"))
        if settings.on("ALLOW_RESTARTS"):
            rules.append(Rule("restart", post, one + r"/(restart|kill)"))
    return tuple(rules)


def decide(rules: tuple[Rule, ...], method: str, path: str) -> Rule | None:
    """The first rule that allows METHOD PATH, or None (refused)."""
    return next((rule for rule in rules if rule.allows(method, path)), None)
