"""The pages a human uses: pending, one escalation, history, sessions."""

from __future__ import annotations

import time
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from ..escalation.channel import Channel
from ..escalation.record import Invalid
from ..escalation.remember import pick
from ..escalation.types import Verdict
from . import present
from .auth import current_member, login_required

bp = Blueprint("views", __name__)

VERDICTS = {"approve": Verdict.APPROVED, "deny": Verdict.DENIED}


def channel() -> Channel:
    return current_app.extensions["ironcurtain.channel"]


@bp.get("/")
@login_required
def pending() -> Any:
    now = time.time()
    rows = [present.row_json(e, now) for e in channel().pending()]
    return render_template("pending.html", rows=rows)


@bp.get("/escalations/<escalation_id>")
@login_required
def escalation(escalation_id: str) -> Any:
    found = channel().get(escalation_id)
    if found is None:
        abort(404, "no such escalation (it may have been cleaned up)")
    if isinstance(found, Invalid):
        return render_template("invalid.html", e=present.invalid_json(found))
    decision = channel().decision(escalation_id)
    return render_template(
        "escalation.html",
        e=present.escalation_json(found, time.time()),
        arguments=present.arguments_text(found),
        decision=present.decision_json(decision),
        options=[present.scope_json(s) for s in present.scope_options(found)],
    )


@bp.post("/escalations/<escalation_id>/decide")
@login_required
def decide(escalation_id: str) -> Any:
    verdict = VERDICTS.get(request.form.get("action", ""))
    if verdict is None:
        abort(400, "action must be approve or deny")
    found = channel().get(escalation_id)
    if found is None:
        abort(404, "no such escalation (it may have been cleaned up)")
    if isinstance(found, Invalid):
        abort(422, "the record is forged or malformed; nothing can be decided on it")
    remember = None
    scope_id = request.form.get("remember", "")
    if scope_id and verdict is Verdict.APPROVED:
        try:
            remember = pick(present.scope_options(found), scope_id)
        except ValueError as exc:
            abort(400, str(exc))
    ruling = channel().decide(
        escalation_id,
        verdict,
        by=current_member() or "",  # login_required: never empty here
        reason=request.form.get("reason", "")[:2000],
        remember=remember,
    )
    flash(present.ruling_text(ruling))
    return redirect(url_for("views.escalation", escalation_id=escalation_id))


@bp.get("/history")
@login_required
def history() -> Any:
    filters = {
        "session_id": request.args.get("session", "")[:200],
        "verdict": request.args.get("verdict", "")[:20],
        "text": request.args.get("q", "")[:200],
    }
    now = time.time()
    rows = [present.history_json(h, now) for h in channel().history(**filters)]
    return render_template("history.html", rows=rows, filters=filters)


@bp.get("/sessions")
@login_required
def sessions() -> Any:
    rows = [present.session_json(s) for s in channel().sessions()]
    return render_template("sessions.html", rows=rows)


@bp.post("/sessions/<session_id>/revoke")
@login_required
def revoke(session_id: str) -> Any:
    if channel().revoke(session_id, request.form.get("scope", "")):
        flash("Revoked: similar calls in that session will ask a human again.")
    else:
        flash("Nothing to revoke (already revoked?).")
    return redirect(url_for("views.sessions"))
