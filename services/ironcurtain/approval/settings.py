"""The approval service's settings, parsed once from the environment into a typed object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 8470


def state_dir(environ: Mapping[str, str] = os.environ) -> Path:
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(environ.get("IRONCURTAIN_STATE_DIR") or Path(base) / "ironcurtain")


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
        return cls(
            redis_url=environ.get("IRONCURTAIN_REDIS_URL", "rediss://redis:6379/0"),
            redis_password_file=Path(
                environ.get("IRONCURTAIN_REDIS_CREDENTIAL_FILE") or shared / "redis_approval"
            ),
            redis_ca_file=Path(
                environ.get("IRONCURTAIN_REDIS_CA_FILE") or shared / "tls" / "ca.pem"
            ),
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
