"""The joined machine's side of the registrar: HTTPS pinned to the team CA, a member's token.

`Team` is what `ironcurtain shared join` stores under `<state>/team/`: the CA (the only anchor the
machine trusts for the team), the registrar's URL and the Redis URL its sessions dial (team.json),
and the member's token (0600). Nothing else of the team server is ever on this machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import bearer
from ..escalation import tls
from ..escalation.acl import Credential


class RegistrarError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Registrar:
    url: str  # https://HOST:PORT
    ca_file: Path
    token: str
    timeout_s: float = 10.0

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        if not self.url.startswith("https://"):
            raise RegistrarError(0, f"the registrar URL must be https: {self.url[:100]!r}")
        try:
            context = tls.context(self.ca_file)
        except OSError as exc:
            raise RegistrarError(0, f"the team CA {self.ca_file}: {exc}") from None
        url = self.url.rstrip("/") + path
        try:
            return bearer.call(
                url, method, self.token, body, context=context, timeout_s=self.timeout_s
            )
        except bearer.CallError as exc:
            if exc.status and not 300 <= exc.status < 400:
                raise RegistrarError(exc.status, str(exc)) from None
            raise RegistrarError(exc.status, f"the registrar at {self.url[:100]} {exc}") from None

    def team(self) -> dict[str, str]:
        found = self.call("GET", "/v1/team")
        return {"member": str(found["member"]), "redis_url": str(found["redis_url"])}

    def create_user(self, session_id: str, **fields: Any) -> Credential:
        found = self.call("POST", f"/v1/sessions/{session_id}/user", fields)
        return Credential(str(found["user"]), str(found["password"]))

    def restore_user(self, session_id: str, credential: Credential, **fields: Any) -> bool:
        """After the team Redis restarted: the session's user back, same password; True if it
        had to (False: it was there)."""
        body = {**fields, "password": credential.password}
        return bool(self.call("PUT", f"/v1/sessions/{session_id}/user", body)["restored"])

    def remove_user(self, session_id: str) -> None:
        self.call("DELETE", f"/v1/sessions/{session_id}/user")


@dataclass(frozen=True, slots=True)
class Team:
    """`<state>/team/`: present only on a machine that joined a team server."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"  # state.team_ca_file() for the default directory

    @property
    def settings(self) -> Path:
        return self.directory / "team.json"

    @property
    def token_file(self) -> Path:
        return self.directory / "member_token"

    def joined(self) -> bool:
        return self.settings.exists()

    def load(self) -> tuple[Registrar, str]:
        """(the registrar client, the Redis URL sessions dial); OSError/ValueError if broken."""
        found = json.loads(self.settings.read_text())
        redis_url = str(found["redis_url"])
        tls.Endpoint.parse(redis_url)
        if self.token_file.stat().st_mode & 0o077:
            raise PermissionError(f"{self.token_file} is readable by others; fix its mode (0600)")
        token = self.token_file.read_text().strip()
        return Registrar(str(found["registrar"]), self.ca, token), redis_url
