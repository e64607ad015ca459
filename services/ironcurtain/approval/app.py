"""`create_app(test_config=None)`: the approval service's Flask app; settings come from the
environment (see settings.py) unless a test passes CHANNEL and TOKEN directly.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import redis
from flask import Flask, render_template

from ..escalation.channel import Channel, connect
from . import api, auth, guard, views
from .secret import load_or_create, session_key
from .settings import Settings

logger = logging.getLogger(__name__)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask("ironcurtain.approval")  # the package: its templates/ and static/
    config = test_config or {}
    if "CHANNEL" in config and "TOKEN" in config:
        channel, token = config["CHANNEL"], config["TOKEN"]
    else:
        settings = Settings.from_environ()
        token = load_or_create(settings.token_file, say=logger.warning)
        channel = Channel(
            connect(settings.redis_url, settings.redis_password_file),
            history_maxlen=settings.history_maxlen,
        )
    app.config.from_mapping(
        SECRET_KEY=session_key(token),
        SESSION_COOKIE_NAME="ironcurtain_approval",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=False,  # served over http on the host's loopback only
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        MAX_CONTENT_LENGTH=64 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.config.update({k: v for k, v in config.items() if k not in ("CHANNEL", "TOKEN")})
    app.extensions["ironcurtain.channel"] = channel
    app.extensions["ironcurtain.token"] = token
    app.jinja_env.autoescape = True  # every template, whatever its name: arguments are hostile

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
