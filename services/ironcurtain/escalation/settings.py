"""Where a team service finds Redis: its URL, credential file and CA, parsed once from the
environment. The approval service's settings and the worker's both start from these."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..state import state_dir


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str
    credential_file: Path  # `USER PASSWORD` (acl.py)
    ca_file: Path  # the team CA (tls.py: TLS only, name checked)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> RedisSettings:
        shared = state_dir(environ) / "shared"
        return cls(
            url=environ.get("IRONCURTAIN_REDIS_URL", "rediss://redis:6379/0"),
            # Unset only outside compose (which names each service's own): the approval user's.
            credential_file=Path(
                environ.get("IRONCURTAIN_REDIS_CREDENTIAL_FILE") or shared / "redis_approval"
            ),
            ca_file=Path(environ.get("IRONCURTAIN_REDIS_CA_FILE") or shared / "tls" / "ca.pem"),
        )
