"""The registrar's HTTP API (Flask; TLS by gunicorn with a certificate of the team CA).

Every call needs `Authorization: Bearer <member token>` (the approval service's members file,
read-only). What a member may do, and nothing else:
- `GET /v1/team`: who they are and the Redis URL their sessions dial;
- `POST /v1/sessions/<sid>/user` (`project`, `machine`, `worktree`, `agent`, `task`, `live`): a new
  user for a session id nobody has yet (409 otherwise: never a second password for a session's
  keys), returned once; with `live`, their own users on that machine whose project is not in it
  are removed first (never the one asked for); at most MAX_USERS per member;
- `PUT /v1/sessions/<sid>/user` (`password` and the fields above): after the team Redis restarted
  (it keeps no session users), put back the user the registrar made for this member, with the
  password it gave them (which proves it: passwords.py); 403 for any other password, 404 when the
  session is another member's; nothing changes for a user that is there;
- `DELETE /v1/sessions/<sid>/user`: remove a user they asked for (404 for anyone else's).
The rules of a session user are `acl.session_rules`: the same whoever asks.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import redis
from flask import Blueprint, Flask, abort, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from ..escalation import acl, redis_keys, users
from ..escalation.channel import Channel, connect, read_credential
from ..people.members import MembersCache, MembersFile, find
from . import passwords

logger = logging.getLogger(__name__)
bp = Blueprint("registrar", __name__)

MAX_USERS = 64  # session users one member may hold at once (bounded Redis memory)
MAX_BODY = 64 * 1024
_PROJECT = re.compile(r"[a-z0-9][a-z0-9_.-]{0,127}")
_MACHINE = re.compile(r"[A-Za-z0-9:._-]{1,128}")


def _token() -> str:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        abort(401, "a member's bearer token is required")
    return given.strip()


def _member() -> str:
    found = find(current_app.extensions["members"].current(), _token())
    if found is None:
        abort(401, "that bearer token is no member's")
    return found.name


def _admin() -> redis.Redis:
    return current_app.extensions["admin"]


def _text(body: dict[str, Any], name: str, limit: int = 4096) -> str:
    value = body.get(name, "")
    if not isinstance(value, str) or len(value) > limit:
        abort(400, f"{name} must be a string of at most {limit} characters")
    return value


def _session(session_id: str) -> str:
    try:
        return redis_keys.check_session(session_id)
    except ValueError:
        abort(400, "not a session id")


@bp.get("/v1/team")
def team() -> Any:
    return jsonify(member=_member(), redis_url=current_app.config["TEAM_REDIS_URL"])


def _body() -> dict[str, Any]:
    if (request.content_length or 0) > MAX_BODY:
        abort(413, "body too large")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "a JSON object is required")
    project, machine = _text(body, "project", 128), _text(body, "machine", 128)
    if not _PROJECT.fullmatch(project) or not _MACHINE.fullmatch(machine):
        abort(400, "project and machine must be plain names")
    live = body.get("live")
    if live is not None and (
        not isinstance(live, list) or len(live) > 1000 or not all(isinstance(p, str) for p in live)
    ):
        abort(400, "live must be a list of at most 1000 project names")
    return body


def _info(body: dict[str, Any]) -> dict[str, str]:
    return {
        "worktree": _text(body, "worktree"),
        "agent": _text(body, "agent", 128),
        "task": _text(body, "task"),
    }


def _key() -> bytes:
    return current_app.extensions["password_key"]


@bp.post("/v1/sessions/<session_id>/user")
def create(session_id: str) -> Any:
    member = _member()
    session_id = _session(session_id)
    body = _body()
    project, machine, live = body["project"], body["machine"], body.get("live")
    info = _info(body)
    admin = _admin()
    own = users.owned_by(admin, member)
    own.pop(acl.session_user(session_id), None)  # the one asked for is never swept: 409 below
    if live is not None:  # the machine says which of its sessions still run
        for user in users.stale(own, own, machine=machine, live_projects=set(live)):
            admin.execute_command("ACL", "DELUSER", user)
            admin.hdel(redis_keys.ACL_USERS, user)
            users.forget(admin, user.removeprefix(acl.SESSION_PREFIX))  # what it held too
            own.pop(user, None)
    if len(own) >= MAX_USERS:
        abort(429, f"member {member} holds {MAX_USERS} session users already")
    password = passwords.issue(_key(), acl.session_user(session_id), member)
    try:
        credential = users.create_session_user(
            admin, session_id, project=project, machine=machine, member=member,
            exclusive=True, password=password,
        )  # fmt: skip
    except users.UserExists:
        abort(409, "that session has a Redis user already")
    if find(current_app.extensions["members"].current(), _token()) is None:
        # Removed while we made it: `member remove` sweeps after revoking the token, so a user
        # made between the two is caught by one of them, here or there.
        users.remove_session_user(admin, session_id)
        abort(401, "that bearer token is no member's")
    Channel(admin).register(session_id, **info)
    logger.info("session user %s made for member %s on %s", credential.user, member, machine)
    return jsonify(user=credential.user, password=credential.password), 201


@bp.put("/v1/sessions/<session_id>/user")
def restore(session_id: str) -> Any:
    member = _member()
    session_id = _session(session_id)
    body = _body()
    user = acl.session_user(session_id)
    given = body.get("password")
    if not isinstance(given, str) or not passwords.verify(_key(), user, member, given):
        abort(403, "that is not a password this registrar gave you for that session")
    admin = _admin()
    owner = users.owner(admin, session_id)
    if owner is not None and owner != member:
        abort(404, "no session user of yours by that id")
    if len(users.owned_by(admin, member)) >= MAX_USERS and owner is None:
        abort(429, f"member {member} holds {MAX_USERS} session users already")
    restored = users.restore_session_user(
        admin, session_id, acl.Credential(user, given),
        project=body["project"], machine=body["machine"], member=member,
    )  # fmt: skip
    if users.owner(admin, session_id) != member:  # another claim won the race: theirs stays
        abort(404, "no session user of yours by that id")
    if find(current_app.extensions["members"].current(), _token()) is None:
        users.remove_session_user(admin, session_id)  # removed meanwhile: as in create()
        abort(401, "that bearer token is no member's")
    if restored:
        Channel(admin).register(session_id, **_info(body))
        logger.info("session user %s put back for member %s", user, member)
    return jsonify(user=user, restored=restored)


@bp.delete("/v1/sessions/<session_id>/user")
def remove(session_id: str) -> Any:
    member = _member()
    session_id = _session(session_id)
    if users.owner(_admin(), session_id) != member:
        abort(404, "no session user of yours by that id")
    users.remove_session_user(_admin(), session_id)
    return "", 204


def _as_json(exc: HTTPException) -> Any:
    return jsonify(error=exc.name, message=exc.description), exc.code


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """`ADMIN` (a Redis client as the admin), `ADMIN_PASSWORD` (the key of session passwords is
    derived from it), `MEMBERS_FILE`, `TEAM_REDIS_URL`; from the environment when not given (the
    container: see compose.team.yaml)."""
    import os

    app = Flask("ironcurtain.registrar")
    config = dict(test_config or {})
    if "ADMIN" not in config:
        credential_file = os.environ["IRONCURTAIN_REDIS_CREDENTIAL_FILE"]
        config["ADMIN"] = connect(
            os.environ.get("IRONCURTAIN_REDIS_URL", "rediss://redis:6379/0"),
            credential_file,
            ca_file=os.environ["IRONCURTAIN_REDIS_CA_FILE"],
            retries=1,  # each call may be sent twice (HSETNX, SETUSER of one password)
        )
        config["ADMIN_PASSWORD"] = read_credential(credential_file).password
        config["MEMBERS_FILE"] = os.environ["IRONCURTAIN_APPROVAL_MEMBERS_FILE"]
        config["TEAM_REDIS_URL"] = os.environ["IRONCURTAIN_TEAM_REDIS_URL"]
    app.config.update(TEAM_REDIS_URL=config["TEAM_REDIS_URL"], MAX_CONTENT_LENGTH=MAX_BODY)
    app.extensions["admin"] = config["ADMIN"]
    app.extensions["password_key"] = passwords.derive_key(config["ADMIN_PASSWORD"])
    app.extensions["members"] = MembersCache(MembersFile(Path(config["MEMBERS_FILE"])))
    app.register_blueprint(bp)
    app.register_error_handler(HTTPException, _as_json)

    @app.get("/healthz")
    def healthz() -> Any:
        try:
            app.extensions["admin"].ping()
        except redis.RedisError:
            return jsonify(status="redis unreachable"), 503
        return jsonify(status="ok")

    @app.after_request
    def headers(response: Any) -> Any:
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return app
