"""The approval app's test configuration: a channel, members with known tokens, a session folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ironcurtain.approval.members import MembersFile
from ironcurtain.escalation.channel import Channel


def approval_config(channel: Channel, folder: Path, tokens: dict[str, str]) -> dict[str, Any]:
    """`create_app` settings for a test: each NAME -> TOKEN of `tokens` made a member."""
    members = MembersFile(folder / "people" / "members.json")
    for name, token in tokens.items():
        members.add_with_token(name, token)
    return {"CHANNEL": channel, "MEMBERS_FILE": members.path, "SESSION_DIR": folder / "web"}
