"""The backends' resources and prompts as the proxy offers them: listed per server, names
prefixed SERVER__NAME like tools, URIs left as the server wrote them (a `file:` URI must stay a
path the policy can read); a read is routed to the one server that lists the URI or a template
it fits, and refused when none or several do. Pure apart from the backend requests.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from .backend import Backend, BackendDown
from .errors import BackendError
from .jsonrpc import METHOD_NOT_FOUND

logger = logging.getLogger(__name__)

SEPARATOR = "__"
LIST_TIMEOUT_S = 30.0
MAX_PAGES = 100  # a paginator that never ends cannot hang a listing
KEYS = {
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
    "prompts/list": "prompts",
}
# RFC 6570 level 1 (`{id}`): one path segment's worth. An expression with an operator
# (`{+path}`, `{/a}`, `{?q}` ...) can span segments: a URI never routes by such a template.
_SIMPLE = re.compile(r"\{([A-Za-z0-9_]+)\}")


def template_matches(template: str, uri: str) -> bool:
    if "{" in _SIMPLE.sub("", template):
        return False
    pattern = "".join(
        "[^/?#]+" if i % 2 else re.escape(part) for i, part in enumerate(_SIMPLE.split(template))
    )
    return re.fullmatch(pattern, uri) is not None


def prefixed(server: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**item, "name": f"{server}{SEPARATOR}{item['name']}"}
        for item in items
        if isinstance(item.get("name"), str)
    ]


def prompt_problem(prompt: Mapping[str, Any], arguments: Mapping[str, Any]) -> str | None:
    """Why `arguments` do not fit the prompt's declared arguments (names, required, strings)."""
    declared = {
        a["name"]: bool(a.get("required"))
        for a in prompt.get("arguments") or ()
        if isinstance(a, dict) and isinstance(a.get("name"), str)
    }
    for name, value in arguments.items():
        if name not in declared:
            return f"argument {name[:100]!r} is not declared by the prompt"
        if not isinstance(value, str):
            return f"argument {name[:100]!r} must be a string"
    missing = sorted(n for n, required in declared.items() if required and n not in arguments)
    if missing:
        return f"required argument {missing[0][:100]!r} is missing"
    return None


class Catalog:
    """Each backend's last listing of its resources, templates and prompts, kept until the
    backend restarts; a listing the agent asks for is always fetched afresh."""

    def __init__(self, backends: Mapping[str, Backend]) -> None:
        self.backends = backends
        self._kept: dict[tuple[str, str], tuple[int, list[dict[str, Any]]]] = {}

    async def listing(
        self, backend: Backend, method: str, *, fresh: bool = False
    ) -> list[dict[str, Any]]:
        kept = self._kept.get((backend.name, method))
        if kept is not None and not fresh and kept[0] == backend.starts:
            return kept[1]
        items: list[dict[str, Any]] = []
        cursor = None
        try:
            for _ in range(MAX_PAGES):
                page = await backend.request(
                    method, {} if cursor is None else {"cursor": cursor}, LIST_TIMEOUT_S
                )
                got = page.get(KEYS[method])
                items += [i for i in got if isinstance(i, dict)] if isinstance(got, list) else []
                cursor = page.get("nextCursor")
                if not isinstance(cursor, str) or not cursor:
                    break
        except BackendError as exc:
            if exc.code != METHOD_NOT_FOUND:  # a server without resources or prompts: none
                logger.warning("backend %s: %s failed: %s", backend.name, method, exc.message)
            items = []
        except (BackendDown, TimeoutError) as exc:
            logger.warning("backend %s: %s failed: %s", backend.name, method, exc)
            return []  # not kept: asked again next time
        self._kept[(backend.name, method)] = (backend.starts, items)
        return items

    async def listed(self, method: str) -> list[dict[str, Any]]:
        """Every backend's items for the agent, names prefixed."""
        out: list[dict[str, Any]] = []
        for backend in self.backends.values():
            out += prefixed(backend.name, await self.listing(backend, method, fresh=True))
        return out

    async def owners(self, uri: str) -> list[str]:
        """The servers that list `uri` or a template it fits (asked afresh once on a miss)."""
        for fresh in (False, True):
            found = []
            for backend in self.backends.values():
                resources = await self.listing(backend, "resources/list", fresh=fresh)
                templates = await self.listing(backend, "resources/templates/list", fresh=fresh)
                if any(r.get("uri") == uri for r in resources) or any(
                    isinstance(t.get("uriTemplate"), str)
                    and template_matches(t["uriTemplate"], uri)
                    for t in templates
                ):
                    found.append(backend.name)
            if found:
                return found
        return []

    async def prompt(self, backend: Backend, name: str) -> dict[str, Any] | None:
        for fresh in (False, True):
            for prompt in await self.listing(backend, "prompts/list", fresh=fresh):
                if prompt.get("name") == name:
                    return prompt
        return None
