"""Who is asking: a member logs in with their name and own token; the browser then holds a cookie
naming a server-side session (sessions.py) that logout and `member remove` end. The API takes the
member's token as a bearer credential. Either way the member comes from the credential only.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from ..people.members import Member, MembersCache, find
from .sessions import SessionsFull, SessionStore
from .throttle import Throttle

bp = Blueprint("auth", __name__)

F = TypeVar("F", bound=Callable[..., Any])
UNKNOWN = Member("unknown", "0" * 32, "0" * 64, 0.0)  # holds no token
# Where a login may send the browser: a path of ours, letters of a URL path only. Everything else
# (`//host`, `/\host`, `/%09/host`, schemes, control characters, queries) falls back to "/".
LOCAL_PATH = re.compile(r"/(?:[A-Za-z0-9._~-]+(?:/[A-Za-z0-9._~-]+)*/?)?")


def safe_next(target: str) -> str | None:
    """`target` if it is a same-origin relative path we may redirect to, else None."""
    return target if LOCAL_PATH.fullmatch(target) else None


def members() -> MembersCache:
    return current_app.extensions["ironcurtain.members"]


def store() -> SessionStore:
    return current_app.extensions["ironcurtain.sessions"]


def session_member() -> str | None:
    """The member of this browser's session, if it is still open and its credential still valid."""
    record = store().lookup(session.get("sid"))
    if record is None:
        return None
    member = members().current().get(record.member)
    if member is None or member.salt != record.credential:
        return None  # removed, or re-added with a new token: the old sessions are over
    return member.name


def bearer_member() -> str | None:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None
    found = find(members().current(), given.strip())
    return found.name if found else None


def current_member() -> str | None:
    """The member behind this request (cached on `g`); None when nobody is logged in."""
    if "member" not in g:
        g.member = session_member()
    return g.member


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_member() is None:
            return redirect(url_for("auth.login", next=request.path))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def client_address() -> str:
    return request.remote_addr or "unknown"  # no proxy in front: X-Forwarded-For is not trusted


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method != "POST":
        return render_template("login.html")
    name = request.form.get("name", "").strip()[:64]
    address = client_address()
    # Per (name, address) pair and per address, never per name alone: failures for alice from
    # elsewhere do not lock alice out (the address comes first and holds no space).
    throttles: tuple[tuple[Throttle, str], ...] = (
        (current_app.extensions["ironcurtain.throttle"], f"{address} {name}"),
        (current_app.extensions["ironcurtain.address_throttle"], address),
    )
    if any(throttle.blocked(key) for throttle, key in throttles):
        flash("Too many failed logins; wait a minute and try again.")
        return render_template("login.html"), 429
    member = members().current().get(name)
    given = request.form.get("token", "").strip()
    # An unknown name costs the same digest as a known one: the answer's time names nobody.
    if not (member or UNKNOWN).holds(given) or member is None:
        for throttle, key in throttles:
            throttle.failed(key)
        flash("That name and token do not match a member.")
        return render_template("login.html"), 403
    store().end(session.get("sid"))
    session.clear()  # a new session (and CSRF token) on every login
    try:
        session["sid"] = store().create(member.name, member.salt)
    except SessionsFull as exc:
        abort(503, str(exc))
    session.permanent = True
    return redirect(safe_next(request.args.get("next", "")) or url_for("views.pending"))


@bp.post("/logout")
def logout() -> Any:
    store().end(session.get("sid"))  # a copy of the cookie decides nothing any more
    session.clear()
    return redirect(url_for("auth.login"))
