"""Resource reads and prompt gets as calls the engine decides: pure.

MCP lets a client read a server's resources by URI (`resources/read`) and fetch its prompts
(`prompts/get`). Each is decided like a tool call, as one of two tools every server of the
policy has without declaring them:
- `resources/read`, whose arguments come from the URI's scheme: a `file:` URI is a `path`
  (role read-path: the rules selecting that role decide it, the workspace's read rule and the
  protected paths included), an http(s) URI a `url` (role url: the domain rules decide it),
  anything else a `uri` (role none: only a rule naming `resources/read` and selecting no role
  can allow it; none does by default). Such a rule never decides a path or URL read.
- `prompts/get`, arguments `name` and `arguments` (role none: only a rule naming `prompts/get`).
- `sampling/createMessage` and `elicitation/create`, no arguments: a server's request to the
  agent's client (for its model; for an answer), forwarded only when a rule naming the
  pseudo-tool allows it for that server (none does by default).
A URI that two readers could take for different objects is refused before any rule
(`read_arguments` raises `UriRefused`): anything but printable ASCII (an IRI, a full-width or
look-alike scheme, spaces, controls), a `file:` URI naming another host or carrying a query or a
fragment, a relative path, `.`/`..` segments, a backslash, an escape that is not UTF-8, or a `%`
left after decoding (a second decoding would read another name).
"""

from __future__ import annotations

import re
from types import MappingProxyType
from urllib.parse import unquote, urlsplit

from .model import Argument, Role, Tool

RESOURCE_READ = "resources/read"
PROMPT_GET = "prompts/get"
SAMPLING = "sampling/createMessage"
ELICITATION = "elicitation/create"
MAX_URI = 8192
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")

_ROLES: dict[str, dict[str, Role]] = {
    RESOURCE_READ: {"path": Role.READ_PATH, "url": Role.URL, "uri": Role.NONE},
    PROMPT_GET: {"name": Role.NONE, "arguments": Role.NONE},
    SAMPLING: {},
    ELICITATION: {},
}
PSEUDO_TOOLS = frozenset(_ROLES)
LOCATED_READ = "resources/read:located"  # the engine's table key for a path or URL read
# Names no backend's tool may have: the engine would decide it as the pseudo-tool.
RESERVED = frozenset({*PSEUDO_TOOLS, LOCATED_READ})


class UriRefused(ValueError):
    """A resource URI refused before any rule, with the reason."""


def pseudo_tools(server: str) -> dict[str, Tool]:
    """The tools every server of the policy has: `resources/read`, `prompts/get` and the two
    server requests."""
    return {
        name: Tool(
            server,
            name,
            MappingProxyType({arg: Argument(arg, role) for arg, role in roles.items()}),
        )
        for name, roles in _ROLES.items()
    }


def read_arguments(uri: object) -> dict[str, str]:
    """The `resources/read` call's arguments for `uri`, or UriRefused saying why."""
    if not isinstance(uri, str) or not uri:
        raise UriRefused("the URI must be a non-empty string")
    if len(uri) > MAX_URI:
        raise UriRefused(f"the URI is longer than {MAX_URI} characters")
    if any(not 0x21 <= ord(c) <= 0x7E for c in uri):
        raise UriRefused("a URI is printable ASCII with no spaces (RFC 3986); this one is not")
    scheme, colon, _ = uri.partition(":")
    if not colon or not _SCHEME.fullmatch(scheme):
        raise UriRefused("the URI has no scheme")
    scheme = scheme.lower()
    if scheme == "file":
        return {"path": _file_path(uri)}
    if scheme in ("http", "https"):
        return {"url": uri}
    return {"uri": uri}


def _file_path(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.query or parts.fragment or "?" in uri or "#" in uri:
        raise UriRefused("a file: URI with a query or a fragment is refused")
    if parts.netloc.lower() not in ("", "localhost"):
        raise UriRefused(f"a file: URI naming a host ({parts.netloc[:100]!r}) is refused")
    try:
        path = unquote(parts.path, errors="strict")
    except UnicodeDecodeError:
        raise UriRefused("a file: URI whose escapes are not UTF-8 is refused") from None
    if not path.startswith("/"):
        raise UriRefused("a file: URI must name an absolute path")
    if "\\" in path:  # as written or escaped: a reader on Windows rules splits there
        raise UriRefused("a file: URI with a backslash is refused")
    if "%" in path:
        raise UriRefused("a file: URI that still holds a '%' once decoded is refused")
    if any(segment in (".", "..") for segment in path.split("/")):
        raise UriRefused("a file: URI with '.' or '..' segments is refused")
    return path
