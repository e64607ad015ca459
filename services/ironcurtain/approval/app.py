"""`create_app(test_config=None)`: the approval service's Flask app; settings come from the
environment (see settings.py) unless a test passes CHANNEL, MEMBERS_FILE and SESSION_DIR directly.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis
from flask import Flask, render_template

from ..escalation.channel import Channel, connect
from ..escalation.terminal import neutral
from ..people.members import MembersCache, MembersFile
from . import api, auth, guard, views
from .events import Hub
from .gunicorn_conf import sse_slots
from .sessions import SessionStore, signing_key
from .settings import DEFAULT_PORT, Settings
from .throttle import Throttle

logger = logging.getLogger(__name__)


def redis_hub(channel: Channel) -> Hub:
    """Live updates from the channel's Redis (a pub/sub connection of its own, its database)."""
    client = getattr(channel, "redis", None)
    if client is None:  # a test's in-memory channel: streams that only beat
        return Hub(_no_redis, 0, slots=sse_slots())
    return Hub(
        lambda: client.pubsub(ignore_subscribe_messages=False),
        int(client.connection_pool.connection_kwargs.get("db", 0)),
        slots=sse_slots(),
    )


def _no_redis() -> Any:
    raise redis.ConnectionError("no Redis behind this channel")


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask("ironcurtain.approval")  # the package: its templates/ and static/
    config = test_config or {}
    if "CHANNEL" in config:
        channel = config["CHANNEL"]
        members_file, session_dir = Path(config["MEMBERS_FILE"]), Path(config["SESSION_DIR"])
        port = int(config.get("PUBLIC_PORT", DEFAULT_PORT))
        tls = bool(config.get("TLS", False))
    else:
        settings = Settings.from_environ()
        members_file, session_dir = settings.members_file, settings.session_dir
        port, tls = settings.public_port, settings.tls
        channel = Channel(
            connect(
                settings.redis_url, settings.redis_password_file, ca_file=settings.redis_ca_file
            ),
            history_maxlen=settings.history_maxlen,
        )
    lifetime = timedelta(hours=12)
    app.config.from_mapping(
        SECRET_KEY=signing_key(session_dir),
        # Browsers send a host's cookies to every port of it (RFC 6265 8.5): the port in the name
        # keeps two approval services on one host apart; see docs/approval.md for the rest.
        # Over TLS (the team's page): Secure and `__Host-`, so no plain-HTTP page of that host
        # can set or receive it. Plain HTTP is served on the host's loopback only.
        SESSION_COOKIE_NAME=f"{'__Host-' if tls else ''}ironcurtain_approval_{port}",
        SESSION_COOKIE_PATH="/",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=tls,
        PERMANENT_SESSION_LIFETIME=lifetime,
        # Set the cookie only when the session changed: the live list refetches while a form
        # posts, and a refreshed copy of the old cookie arriving last would drop the form's
        # flash. The server-side record holds the real expiry (12 hours from login) anyway.
        SESSION_REFRESH_EACH_REQUEST=False,
        MAX_CONTENT_LENGTH=64 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.config.update({k: v for k, v in config.items() if k != "CHANNEL"})
    app.extensions["ironcurtain.channel"] = channel
    app.extensions["ironcurtain.members"] = MembersCache(MembersFile(members_file))
    app.extensions["ironcurtain.sessions"] = SessionStore(session_dir, lifetime.total_seconds())
    # Failed logins: 5 per (member name, client address) pair, 20 per address (auth.login).
    app.extensions["ironcurtain.throttle"] = Throttle(limit=5, window_s=60)
    app.extensions["ironcurtain.address_throttle"] = Throttle(limit=20, window_s=60)
    app.extensions["ironcurtain.hub"] = config.get("HUB") or redis_hub(channel)
    app.jinja_env.autoescape = True  # every template, whatever its name: arguments are hostile

    app.jinja_env.globals["current_member"] = auth.current_member
    # Hostile text made visible (bidi overrides, zero-width, controls) wherever a page shows it.
    app.jinja_env.filters["neutral"] = lambda value: neutral(str(value))
    guard.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)

    @app.errorhandler(redis.RedisError)
    def redis_down(exc: redis.RedisError) -> tuple[Any, int]:
        logger.error("Redis is unreachable: %s", exc)
        message = "Redis (the escalation channel) is unreachable; nothing was decided."
        if api.wants_json():
            return {"error": message}, 503
        return render_template("error.html", message=message), 503

    @app.get("/healthz")
    def healthz() -> tuple[dict[str, str], int]:
        try:
            channel.redis.ping()
        except redis.RedisError:
            return {"status": "redis unreachable"}, 503
        return {"status": "ok"}, 200

    return app
