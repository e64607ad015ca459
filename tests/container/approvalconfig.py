"""The approval app's test configuration: a channel, members with known tokens, a session folder."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from ironcurtain.escalation.channel import Channel
from ironcurtain.people.members import MembersFile


def approval_config(channel: Channel, folder: Path, tokens: dict[str, str]) -> dict[str, Any]:
    """`create_app` settings for a test: each NAME -> TOKEN of `tokens` made a member."""
    members = MembersFile(folder / "people" / "members.json")
    for name, token in tokens.items():
        members.add_with_token(name, token)
    return {"CHANNEL": channel, "MEMBERS_FILE": members.path, "SESSION_DIR": folder / "web"}


def csrf_of(page: bytes) -> str:
    found = re.search(rb'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1).decode()


def log_in(client: FlaskClient, token: str, name: str = "alice") -> Any:
    """Through the login form, as a person does: the server-side session a browser would hold."""
    csrf = csrf_of(client.get("/login").data)
    return client.post("/login", data={"token": token, "name": name, "csrf_token": csrf})
