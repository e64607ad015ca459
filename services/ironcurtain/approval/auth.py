"""Logging in: a human pastes the token once; the browser then holds a signed session cookie."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from .secret import matches

bp = Blueprint("auth", __name__)

F = TypeVar("F", bound=Callable[..., Any])
NAME = re.compile(r"[^A-Za-z0-9 _.@-]")


def clean_name(raw: str, default: str = "human") -> str:
    name = NAME.sub("", raw).strip()[:64]
    return name or default


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not session.get("user"):
            return redirect(url_for("auth.login", next=request.path))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "POST":
        given = request.form.get("token", "")
        if matches(given.strip(), current_app.extensions["ironcurtain.token"]):
            session.clear()  # a new session (and CSRF token) on every login
            session["user"] = clean_name(request.form.get("name", ""))
            session.permanent = True
            target = request.args.get("next", "")
            # Only local paths: never an open redirect.
            if not target.startswith("/") or target.startswith("//") or "\\" in target:
                target = url_for("views.pending")
            return redirect(target)
        flash("That token is not right.")
        return render_template("login.html"), 403
    return render_template("login.html")


@bp.post("/logout")
def logout() -> Any:
    session.clear()
    return redirect(url_for("auth.login"))
