"""How every client reaches the team Redis: TLS only, checked against the team CA and host name.

One place decides it, for the MCP proxy, the approval service, the worker and the host CLI. The
URL is parsed here, never by redis-py (its URL options could turn the checks off:
`?ssl_cert_reqs=none`, `ssl_check_hostname=false`): only `rediss://HOST[:PORT][/DB]`, no user,
password or options. The context trusts the team CA alone (no system store), requires a
certificate naming HOST, and TLS 1.2 at least. `address` lets the host CLI dial a container's IP
while still checking the name the certificate must carry (`redis`). Imports no redis: the
MCP proxy checks its settings at start without loading a Redis client (channel.py has the
connection class).
"""

from __future__ import annotations

import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 6379


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str  # the name the server certificate must carry
    port: int
    db: int

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """ValueError for anything but a plain `rediss://` URL, saying why."""
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port or DEFAULT_PORT
        except ValueError:
            raise ValueError(f"not a Redis URL: {url[:100]!r}") from None
        if parts.scheme == "redis":
            raise ValueError(
                "plaintext Redis is refused: use rediss:// (TLS, checked against the team CA)"
            )
        if parts.scheme != "rediss" or not parts.hostname:
            raise ValueError(f"not a rediss:// URL: {url[:100]!r}")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError(
                "a Redis URL carries no user, password or options (the credential is a file; "
                "the TLS checks are not optional)"
            )
        path = parts.path.strip("/") or "0"
        if not path.isdigit():
            raise ValueError(f"not a Redis database number: {path[:20]!r}")
        return cls(parts.hostname, port, int(path))


def context(ca_file: Path | str) -> ssl.SSLContext:
    """The client context: the team CA only, the host name checked, TLS 1.2 or later.
    OSError/ssl.SSLError if the CA file is missing or not a certificate (fail closed)."""
    found = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname on
    found.minimum_version = ssl.TLSVersion.TLSv1_2
    found.load_verify_locations(cafile=str(ca_file))
    if found.verify_mode is not ssl.CERT_REQUIRED or not found.check_hostname:
        raise ssl.SSLError("the team TLS context must verify the certificate and its name")
    return found


def https_context(url: str, ca_file: Path | None) -> ssl.SSLContext | None:
    """For a person's CLI calling an https service of the team: the CA given (or `shared join`'s)
    as the only anchor; None (the system store) when there is none or the URL is plain http."""
    if not url.startswith("https://") or ca_file is None:
        return None
    return context(ca_file)
