"""A JSON call that carries a person's bearer token, and sends it only where it was told.

Both host-side clients (the approval CLI's, `people/client.py`, and a joined machine's registrar
client, `registrar/client.py`) call through here, because urllib's defaults would leak the token:
its redirect handler resends every header, `Authorization` included, to wherever a 3xx points, and
its proxy handler sends the request (over plain HTTP, token and all) to a proxy named by the
environment. Here no redirect is followed (a 3xx is an error naming where it pointed), no proxy is
used, and over https the only trust anchor is the `ssl.SSLContext` the caller built (the team CA),
else the system store.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

MAX_ANSWER_BYTES = 8 << 20  # an answer larger than this is not ours: refused, not buffered


class CallError(Exception):
    """`status` is the HTTP status, 0 when there was no HTTP answer (unreachable, bad URL)."""

    def __init__(self, status: int, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body or {}


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises the 3xx as an HTTPError, which `call` words


def opener(context: ssl.SSLContext | None = None) -> urllib.request.OpenerDirector:
    """urllib's opener without the environment's proxies and without following redirects."""
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        _RefuseRedirects(),
        urllib.request.HTTPSHandler(context=context),
    )


def is_loopback(url: str) -> bool:
    """Whether the URL's host is this machine's loopback by its very spelling: `localhost`, an
    address in 127.0.0.0/8 or ::1. Names are never resolved (a resolver could answer anything)."""
    try:
        host = urllib.parse.urlsplit(url).hostname
    except ValueError:
        return False
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refusal(exc: urllib.error.HTTPError) -> CallError:
    if 300 <= exc.code < 400:
        where = str(exc.headers.get("Location", ""))[:200]
        return CallError(
            exc.code,
            f"answered a redirect ({exc.code}) to {where!r}; not followed, so the token "
            "goes only where it was pointed: give that URL itself if it is right",
        )
    try:
        found = json.loads(exc.read(MAX_ANSWER_BYTES))
    except (ValueError, OSError):
        found = {}
    found = found if isinstance(found, dict) else {}
    message = found.get("message") or found.get("error") or exc.reason
    return CallError(exc.code, str(message), found)


def call(
    url: str,
    method: str,
    token: str,
    body: dict[str, Any] | None = None,
    *,
    context: ssl.SSLContext | None = None,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """The JSON answer of one call; CallError (with the service's own message) otherwise."""
    if not url.startswith(("http://", "https://")):
        raise CallError(0, f"not an http(s) URL: {url[:100]!r}")
    if url.startswith("http://") and not is_loopback(url):
        raise CallError(
            0,
            "refused to send a token over plain http to another machine: use the https URL "
            "(plain http carries it only to this machine's loopback)",
        )
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        },
    )
    try:
        with opener(context).open(request, timeout=timeout_s) as answer:
            data = answer.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as exc:
        with exc:  # its answer's socket, closed whatever we raise
            raise _refusal(exc) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CallError(0, f"is unreachable ({reason})") from None
    if len(data) > MAX_ANSWER_BYTES:
        raise CallError(0, f"answered more than {MAX_ANSWER_BYTES} bytes")
    try:
        found = json.loads(data) if data else {}
    except ValueError:
        raise CallError(0, "answered something that is not JSON") from None
    if not isinstance(found, dict):
        raise CallError(0, "answered JSON that is not an object")
    return found
