"""The approval service's settings, parsed once from the environment into a typed object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..escalation.settings import RedisSettings
from ..people.client import DEFAULT_PORT
from ..state import state_dir


@dataclass(frozen=True, slots=True)
class Settings:
    redis_url: str
    redis_password_file: Path  # a credential file: `USER PASSWORD` (escalation/acl.py)
    redis_ca_file: Path  # the team CA (escalation/tls.py: TLS only, name checked)
    members_file: Path
    session_dir: Path
    public_port: int = DEFAULT_PORT
    history_maxlen: int = 10_000

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        shared = state_dir(environ) / "shared"
        redis = RedisSettings.from_environ(environ)
        return cls(
            redis_url=redis.url,
            redis_password_file=redis.credential_file,
            redis_ca_file=redis.ca_file,
            members_file=Path(
                environ.get("IRONCURTAIN_APPROVAL_MEMBERS_FILE")
                or shared / "people" / "members.json"
            ),
            session_dir=Path(
                environ.get("IRONCURTAIN_APPROVAL_SESSION_DIR")
                or state_dir(environ) / "approval-sessions"
            ),
            public_port=int(environ.get("IRONCURTAIN_APPROVAL_PORT", str(DEFAULT_PORT))),
            history_maxlen=int(environ.get("IRONCURTAIN_HISTORY_MAXLEN", "10000")),
        )
