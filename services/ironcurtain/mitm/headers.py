"""Request headers: a per-provider allowlist; credential-like names refused in any spelling.

Pure functions over h11's (lower-cased) header list. What the agent may send to a vendor:
the provider's key header(s), carrying the session's fake key (checked in fake_keys.py), and the
names on the provider's `headers` list. Everything else is dropped, except a name that looks
like a credential (`x_api_key`, `anthropic-api-key`, `x-auth-token`, ...): that is refused,
because a second credential beside ours means the agent holds a key we did not give it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from .errors import Refusal

# Words that make a header name a credential once case and separators are gone
# ("X_Api-KEY" -> "xapikey"). Deliberately broad: a false positive is a clear refusal.
_CREDENTIAL_WORDS = ("key", "token", "auth", "secret", "passw", "credential", "bearer")
_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_SHOWN = re.compile(r"[a-z0-9_.-]{1,40}")


@functools.lru_cache(maxsize=1024)  # agents send the same few names on every request
def credential_like(name: str) -> bool:
    squashed = _NOT_ALNUM.sub("", name.lower())
    return any(word in squashed for word in _CREDENTIAL_WORDS)


def shown(name: bytes) -> str:
    """A header name fit for a refusal message: plain and short, else not echoed."""
    text = name.decode("latin-1")
    return repr(text) if _SHOWN.fullmatch(text) else "(a header name not shown)"


class Allowlist:
    """Exact names and `prefix*` globs of one provider (providers.py refuses credential-like
    names on the list, so an exact name never needs the credential check)."""

    __slots__ = ("exact", "prefixes")

    def __init__(self, names: Iterable[str]) -> None:
        names = tuple(names)
        self.exact = frozenset(n.encode() for n in names if not n.endswith("*"))
        self.prefixes = tuple(n[:-1].encode() for n in names if n.endswith("*"))


def admit(
    headers: Iterable[tuple[bytes, bytes]],
    key_headers: frozenset[bytes],
    allowed: Allowlist,
    reserved: frozenset[bytes],
) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    """(headers to forward, key headers presented); raise Refusal for a credential-like name.

    `reserved` names (framing, hop-by-hop, Host) are handled by the caller and never forwarded.
    """
    forward: list[tuple[bytes, bytes]] = []
    presented: list[tuple[bytes, bytes]] = []
    exact, prefixes = allowed.exact, allowed.prefixes
    for name, value in headers:
        if name in exact:  # the common case first: a name on the list
            forward.append((name, value))
        elif name in key_headers:
            presented.append((name, value))
        elif name in reserved:
            if name == b"proxy-authorization":
                raise Refusal(403, "key", "credential header 'proxy-authorization' is refused")
        elif credential_like(name.decode("latin-1")):
            raise Refusal(
                403,
                "key",
                f"credential-like header {shown(name)} is refused; "
                "send only the session's key, in the provider's own header",
            )
        elif name.startswith(prefixes):  # a glob (x-stainless-*), after the credential check
            forward.append((name, value))
    return forward, presented


# Header names that ask to leave HTTP/1.1 for another protocol.
_UPGRADE = (b"upgrade", b"http2-settings")


def upgrade_refused(names: Iterable[bytes]) -> Refusal | None:
    """WebSocket / h2c upgrades are never served, on CONNECT or inside a tunnel."""
    if any(name in _UPGRADE for name in names):
        return Refusal(
            403, "upgrade", "protocol upgrades (WebSocket, h2c) are refused; use HTTP/1.1"
        )
    return None
