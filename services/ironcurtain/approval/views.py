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

from ..escalation.channel import Channel, Outcome
from ..escalation.paging import BadParameter, PageQuery
from ..escalation.record import Escalation, Invalid
from ..escalation.remember import pick
from ..escalation.types import Verdict
from . import present
from .auth import current_member, login_required

bp = Blueprint("views", __name__)

VERDICTS = {"approve": Verdict.APPROVED, "deny": Verdict.DENIED}


def _url(endpoint: str, params: dict[str, str]) -> str:
    """url_for with query parameters (typed apart from url_for's own `_external`, ...)."""
    values: dict[str, Any] = dict(params)
    return url_for(endpoint, **values)


def channel() -> Channel:
    return current_app.extensions["ironcurtain.channel"]


BULK_MAX = 200  # ids one bulk deny may name (a page at most)


@bp.get("/")
@login_required
def pending() -> Any:
    try:
        query = PageQuery.parse(request.args.items(multi=True))
    except BadParameter as exc:
        return render_template("error.html", message=str(exc)), 400
    page, rows = channel().page(query)
    sessions = [e.session_id for e in rows]
    reviewed = channel().auto_reviewed(sessions)
    registered = channel().registrations(sessions)  # one read for the page's sessions
    listing = present.page_json(page, rows, query, time.time(), reviewed, registered=registered)
    following = page.next
    return render_template(
        "pending.html",
        listing=listing,
        rows=listing["escalations"],
        query=query,
        next_url=_url("views.pending", query.after(following)) if following else "",
        first_url=_url("views.pending", query.after(None)) if query.cursor else "",
        live_url=_url("api.pending", query.after(query.cursor)),
    )


@bp.post("/escalations/deny")
@login_required
def bulk_deny() -> Any:
    """Deny the checked escalations (CSRF-checked like every form, by guard.check_csrf)."""
    ids = request.form.getlist("id")
    if not ids or len(ids) > BULK_MAX:
        abort(400, f"check 1 to {BULK_MAX} escalations to deny")
    reason = request.form.get("reason", "")[:2000]
    outcomes: dict[str, int] = {}
    for escalation_id in dict.fromkeys(ids):
        found = channel().get(escalation_id)
        if not isinstance(found, Escalation):
            outcomes["not decidable"] = outcomes.get("not decidable", 0) + 1
            continue
        ruling = channel().decide(
            escalation_id, Verdict.DENIED, by=current_member() or "", reason=reason
        )
        outcomes[ruling.outcome.value] = outcomes.get(ruling.outcome.value, 0) + 1
    flash(present.bulk_text(outcomes))
    return redirect(url_for("views.pending"))


@bp.get("/escalations/<escalation_id>")
@login_required
def escalation(escalation_id: str) -> Any:
    found = channel().get(escalation_id)
    if found is None:
        abort(404, "no such escalation (it may have been cleaned up)")
    registration = channel().registrations([found.session_id]).get(found.session_id)
    if isinstance(found, Invalid):
        return render_template("invalid.html", e=present.invalid_json(found, registration))
    decision = channel().decision(escalation_id)
    return render_template(
        "escalation.html",
        e=present.escalation_json(found, time.time(), registration),
        arguments=present.arguments_text(found),
        change=present.changes(found),
        audit=present.audit_rows(found.recent_audit),
        auto_review=bool(channel().auto_reviewed([found.session_id])),
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
    digest = request.form.get("digest", "")
    if not present.is_digest(digest):
        abort(400, "the form lacks the digest of the escalation as shown; reload the page")
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
        shown_digest=digest,  # the record as this page showed it, or nothing is decided
    )
    flash(present.ruling_text(ruling))
    if ruling.outcome is Outcome.CHANGED:  # show the request as it is now, and say so
        return escalation(escalation_id), 409
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
    found = channel().history(
        session_id=filters["session_id"], verdict=filters["verdict"], text=filters["text"]
    )
    registered = channel().registrations([h.escalation.session_id for h in found])
    rows = [present.history_json(h, now, registered) for h in found]
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
