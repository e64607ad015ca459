"""Browser-facing guards: strict security headers on every answer, CSRF on every unsafe request.

A state-changing request with a session cookie must carry the session's CSRF token and must not
come from another site (Origin / Sec-Fetch-Site). The JSON API authenticates with a bearer
token instead of cookies, so a forged cross-site request has nothing to ride on there.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from flask import Flask, Response, abort, request, session

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Not "no-referrer": with it Chromium sends `Origin: null` on same-origin form posts.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-store",
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def cross_site() -> bool:
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    return origin == "null" or urlsplit(origin).netloc != request.host


def check_csrf() -> None:
    if request.method in SAFE_METHODS or request.blueprint == "api":
        return
    if cross_site():
        abort(403, "cross-site request refused")
    expected = session.get("csrf")
    given = request.form.get("csrf_token", "")
    if not isinstance(expected, str) or not secrets.compare_digest(given, expected):
        abort(403, "missing or wrong CSRF token; reload the page and try again")


def secure_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers[name] = value
    return response


def init_app(app: Flask) -> None:
    app.before_request(check_csrf)
    app.after_request(secure_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
