"""The fake vendor's subscription logins (a local stand-in speaking the real wire format):
bearer access tokens that expire, the beta header they need, and the refresh grant at the
token endpoint, whose refresh tokens rotate (each is spent once). Pure over an injected clock.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

TOKEN_PATH = "/v1/oauth/token"  # noqa: S105 - a path, not a secret
BETA = "oauth-2025-04-20"
ACCESS_PREFIX = "sk-ant-oat01-"
REFRESH_PREFIX = "sk-ant-ort01-"
CLIENT_ID = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"


def _auth_error(message: str) -> dict[str, object]:
    return {"type": "error", "error": {"type": "authentication_error", "message": message}}


@dataclass
class Issuer:
    lifetime_s: int = 3600  # of each access token it issues
    clock: Callable[[], float] = time.time
    access: dict[str, float] = field(default_factory=dict)  # token -> expiry (epoch s)
    refresh: set[str] = field(default_factory=set)  # refresh tokens not yet spent
    grants: int = 0  # refresh grants answered with new tokens

    def seed(self, access: str, refresh: str | None, expires_at_s: float) -> None:
        """Tokens the test hands the user's Claude Code (as a real sign-in would)."""
        self.access[access] = expires_at_s
        if refresh is not None:
            self.refresh.add(refresh)

    def issue(self) -> dict[str, object]:
        access = ACCESS_PREFIX + secrets.token_urlsafe(32)
        refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
        self.access[access] = self.clock() + self.lifetime_s
        self.refresh.add(refresh)
        return {
            "token_type": "Bearer",
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": self.lifetime_s,
            "scope": "user:inference user:profile",
        }

    def check(self, headers: Mapping[str, Sequence[str]]) -> tuple[int, object] | None:
        """None when the request's bearer token is good, else (status, error body).
        Requests without a bearer OAuth token are not this module's (API keys)."""
        bearer = [v.removeprefix("Bearer ") for v in headers.get("authorization", [])]
        if not bearer or not bearer[0].startswith(ACCESS_PREFIX):
            return None
        betas = {b.strip() for v in headers.get("anthropic-beta", []) for b in v.split(",")}
        if BETA not in betas:
            return 401, _auth_error("OAuth authentication is currently not supported.")
        expiry = self.access.get(bearer[0])
        if expiry is None:
            return 401, _auth_error("Invalid bearer token")
        if self.clock() >= expiry:
            return 401, _auth_error(
                "OAuth token has expired. Please obtain a new token or refresh your existing token."
            )
        return None

    def grant(self, body: bytes) -> tuple[int, object]:
        """POST /v1/oauth/token with a refresh grant (JSON, as Claude Code sends it)."""
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or doc.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type"}
        if doc.get("client_id") != CLIENT_ID:
            return 400, {"error": "invalid_client"}
        token = doc.get("refresh_token")
        if not isinstance(token, str) or token not in self.refresh:
            return 400, {
                "error": "invalid_grant",
                "error_description": "Refresh token not found or invalid",
            }
        self.refresh.discard(token)  # rotation: a refresh token is spent once
        self.grants += 1
        return 200, self.issue()
