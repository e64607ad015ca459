"""The host's side of a subscription session: the token socket the MITM asks, the token
endpoint's client, the host's credentials file and the key store entry. The I/O around
refresh.py's Refresher.

The socket protocol (one JSON line each way, then close):
  {"want": "token"}                          -> {"access_token": T, "expires_at_ms": N|null}
  {"want": "refresh", "refused": SHA256(T)}  -> the same, after at most one refresh
  anything else                              -> {"error": "..."}
The reply never carries the refresh token; the request carries no token at all.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

from .oauth import OAuthError
from .refresh import Refresher

log = logging.getLogger(__name__)
MAX_REQUEST = 512  # bytes: a request names at most a digest
GRANT_TIMEOUT_S = 30.0


def answer(refresher: Refresher, line: bytes) -> dict[str, object]:
    """One request line -> the reply document (pure over the Refresher)."""
    try:
        doc = json.loads(line)
    except ValueError:
        return {"error": "not JSON"}
    if not isinstance(doc, dict):
        return {"error": "not an object"}
    try:
        if doc == {"want": "token"}:
            creds = refresher.token()
        elif set(doc) == {"want", "refused"} and doc["want"] == "refresh":
            refused = doc["refused"]
            if not isinstance(refused, str) or len(refused) != 64:
                return {"error": "refused must be a SHA-256 hex digest"}
            creds = refresher.after_401(refused)
        else:
            return {"error": "unknown request"}
    except OAuthError as exc:
        return {"error": str(exc)}
    except OSError as exc:  # the token endpoint unreachable: said, never the token
        return {"error": f"the token endpoint failed: {type(exc).__name__}"}
    return {"access_token": creds.access_token, "expires_at_ms": creds.expires_at_ms}


class TokenServer:
    """A unix socket in a folder only the MITM's uid may enter; one thread per request."""

    def __init__(self, path: Path, refresher: Refresher, reader_uid: int | None = None) -> None:
        self.path = path
        refresher_ = refresher

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline(MAX_REQUEST)
                reply = answer(refresher_, line)
                if "error" in reply:
                    log.warning("token socket: %s", reply["error"])
                self.wfile.write(json.dumps(reply).encode() + b"\n")

        old = os.umask(0o077)
        try:
            self._server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        finally:
            os.umask(old)
        self._server.daemon_threads = True
        if reader_uid is not None and os.geteuid() == 0:
            os.chown(path, reader_uid, -1)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> TokenServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self.path.unlink(missing_ok=True)


class ClaudeFile:
    """The host's `~/.claude/.credentials.json`, written atomically with its own mode kept."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> str | None:
        try:
            return self.path.read_text()
        except FileNotFoundError:
            return None

    def write(self, text: str) -> None:
        mode = self.path.stat().st_mode & 0o777 if self.path.exists() else 0o600
        tmp = self.path.with_name(self.path.name + ".ironcurtain-tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode & 0o700)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, self.path)


class _Pinned(http.client.HTTPSConnection):
    """HTTPS to `address` while verifying the certificate for `name` (tests, mirrors)."""

    def __init__(self, name: str, address: tuple[str, int], context: ssl.SSLContext) -> None:
        super().__init__(name, 443, timeout=GRANT_TIMEOUT_S, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection(self._address, GRANT_TIMEOUT_S)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def grant_client(
    token_url: str, ca_file: Path | None = None, address: tuple[str, int] | None = None
) -> Callable[[bytes], bytes]:
    """POST a refresh grant body to the token endpoint, TLS verified for its host name;
    `address` sends it to another place (the fake vendor in tests), still verified so."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    host, _, path = token_url.removeprefix("https://").partition("/")

    def post(body: bytes) -> bytes:
        conn = _Pinned(host, address or (host, 443), context)
        try:
            conn.request(
                "POST",
                "/" + path,
                body,
                {"content-type": "application/json", "accept": "application/json"},
            )
            response = conn.getresponse()
            data = response.read(65536)
        finally:
            conn.close()
        if response.status != 200:
            raise OAuthError(
                f"the token endpoint refused the refresh (HTTP {response.status}): "
                "sign in again with `claude`, then `ironcurtain login claude`"
            )
        return data

    return post
