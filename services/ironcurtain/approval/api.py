"""The JSON API (what the CLI and the page's live script use).

Reads accept a member's bearer token or a logged-in browser session; anything that changes state
needs the bearer token (no cookies, so no cross-site request can ride on a browser's login). A
decision names the member whose token it carries; a `by` in the body is ignored. An approval
names the `digest` of the escalation as the member was shown it (required; a denial may name
one): refused (409, `changed`) when the record stored now has another.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, abort, current_app, g, jsonify, request, stream_with_context
from werkzeug.exceptions import HTTPException

from ..escalation.channel import Channel, Outcome, Ruling
from ..escalation.paging import BadParameter, PageQuery
from ..escalation.record import Invalid
from ..escalation.remember import pick
from ..escalation.types import Verdict
from . import present
from .auth import bearer_member, session_member
from .events import Full, Hub, stream

bp = Blueprint("api", __name__, url_prefix="/api/v1")

STATUS = {
    Outcome.DECIDED: 200,
    Outcome.ALREADY: 409,
    Outcome.LATE: 409,
    Outcome.MISSING: 404,
    Outcome.INVALID: 422,
    Outcome.CHANGED: 409,
}


def wants_json() -> bool:
    return request.path.startswith("/api/")


def channel() -> Channel:
    return current_app.extensions["ironcurtain.channel"]


@bp.before_request
def authenticate() -> None:
    g.bearer = bearer_member()
    if g.bearer is not None:
        return
    if request.method in ("GET", "HEAD") and session_member() is not None:
        return
    abort(401, "a member's valid bearer token is required")


@bp.get("/whoami")
def whoami() -> Any:
    return jsonify(member=g.bearer or session_member())


@bp.errorhandler(HTTPException)
def as_json(exc: HTTPException) -> Any:
    return jsonify(error=exc.description), exc.code


@bp.get("/escalations")
def pending() -> Any:
    """One page: ?limit=1..200&order=latest|soonest&session=&worktree=&cursor=<next>."""
    try:
        query = PageQuery.parse(request.args.items(multi=True))
    except BadParameter as exc:
        return jsonify(error=str(exc), parameter=exc.parameter), 400
    page, rows = channel().page(query)
    sessions = [e.session_id for e in rows]
    reviewed = channel().auto_reviewed(sessions)
    registered = channel().registrations(sessions)
    return jsonify(
        present.page_json(page, rows, query, time.time(), reviewed, registered=registered)
    )


@bp.get("/events")
def events() -> Any:
    """Server-Sent Events: `pending` (a session's pending set changed), `decided` (an id),
    `reset` (refetch everything). No parameters; bounded slots per worker (503 when full)."""
    if request.args:
        name = next(iter(request.args))[:40]
        return jsonify(error=f"{name}: unknown parameter (none allowed)", parameter=name), 400
    hub: Hub = current_app.extensions["ironcurtain.hub"]
    try:
        listener = hub.listen()
    except Full as exc:
        return jsonify(error=str(exc)), 503, {"Retry-After": "10"}
    bearer = g.bearer

    def allowed() -> bool:
        return (bearer_member() if bearer else session_member()) is not None

    settings = current_app.config
    body = stream(
        hub,
        listener,
        allowed=allowed,
        heartbeat_s=settings.get("SSE_HEARTBEAT_S", 15.0),
        lifetime_s=settings.get("SSE_LIFETIME_S", 120.0),
    )
    response = Response(stream_with_context(body), mimetype="text/event-stream")
    response.headers["X-Accel-Buffering"] = "no"
    return response


@bp.get("/escalations/<escalation_id>")
def escalation(escalation_id: str) -> Any:
    found = channel().get(escalation_id)
    if found is None:
        abort(404, "no such escalation")
    registration = channel().registrations([found.session_id]).get(found.session_id)
    if isinstance(found, Invalid):
        shown = present.invalid_json(found, registration)
        return jsonify(escalation=shown, decision=None, choices=[])
    return jsonify(
        escalation=present.escalation_json(found, time.time(), registration),
        decision=present.decision_json(channel().decision(escalation_id)),
        choices=[present.scope_json(s) for s in present.scope_options(found)],
    )


@bp.post("/escalations/<escalation_id>/<action>")
def decide(escalation_id: str, action: str) -> Any:
    verdict = {"approve": Verdict.APPROVED, "deny": Verdict.DENIED}.get(action)
    if verdict is None:
        abort(404, "action must be approve or deny")
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        abort(400, "reason must be a string")
    digest = body.get("digest")
    if digest is None and verdict is Verdict.APPROVED:
        abort(400, present.DIGEST_REQUIRED)
    if digest is not None and not present.is_digest(digest):
        abort(400, "digest must be the 64 hex digits of `escalation.digest` as shown")
    remember = None
    scope_id = body.get("remember") or ""
    if scope_id:
        if verdict is not Verdict.APPROVED or not isinstance(scope_id, str):
            abort(400, "only an approval can be remembered, with a scope id from `choices`")
        found = channel().get(escalation_id)
        if found is None:
            abort(404, "no such escalation")
        if isinstance(found, Invalid):
            abort(422, present.ruling_text(Ruling(Outcome.INVALID, None)))
        try:
            remember = pick(present.scope_options(found), scope_id)
        except ValueError as exc:
            abort(400, str(exc))
    ruling = channel().decide(
        escalation_id,
        verdict,
        by=g.bearer,
        reason=reason[:2000],
        remember=remember,
        shown_digest=digest,
    )
    return jsonify(
        outcome=ruling.outcome.value,
        message=present.ruling_text(ruling),
        decision=present.decision_json(ruling.decision),
    ), STATUS[ruling.outcome]


@bp.get("/history")
def history() -> Any:
    now = time.time()
    entries = channel().history(
        session_id=request.args.get("session", "")[:200],
        verdict=request.args.get("verdict", "")[:20],
        text=request.args.get("q", "")[:200],
    )
    registered = channel().registrations([h.escalation.session_id for h in entries])
    return jsonify(history=[present.history_json(h, now, registered) for h in entries])


@bp.get("/sessions")
def sessions() -> Any:
    return jsonify(sessions=[present.session_json(s) for s in channel().sessions()])


@bp.delete("/sessions/<session_id>/remembered/<scope_id>")
def revoke(session_id: str, scope_id: str) -> Any:
    if not channel().revoke(session_id, scope_id):
        abort(404, "no such remembered scope")
    return jsonify(revoked=scope_id)


@bp.get("/sessions/<session_id>/auto-review")
def auto_review(session_id: str) -> Any:
    return jsonify(session_id=session_id, on=channel().auto_review(session_id))


@bp.put("/sessions/<session_id>/auto-review")
def set_auto_review(session_id: str) -> Any:
    """Switch the session's auto-reviewer on or off (bearer token: see authenticate)."""
    body = request.get_json(silent=True)
    on = body.get("on") if isinstance(body, dict) else None
    if not isinstance(on, bool):
        abort(400, 'send {"on": true} or {"on": false}')
    try:
        channel().set_auto_review(session_id, on)
    except ValueError as exc:
        abort(400, str(exc))
    return jsonify(session_id=session_id, on=on)
