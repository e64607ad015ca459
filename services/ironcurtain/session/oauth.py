"""Claude subscription (OAuth) credentials as data: Claude Code's file format, the key store's
format, the refresh grant and the agent's fake credentials. Pure functions; no I/O.

Claude Code keeps them in `~/.claude/.credentials.json`:
`{"claudeAiOauth": {"accessToken": "sk-ant-oat01-…", "refreshToken": "sk-ant-ort01-…",
"expiresAt": <ms since the epoch>, "scopes": [...], "subscriptionType": "max"}}`.
`claude setup-token` prints a long-lived access token instead (no refresh token, no expiry).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

CLAUDE_KEY = "claudeAiOauth"
STORE_NAME = "anthropic-oauth"  # the key store's file for a Claude subscription
# A fake access token never expires as the agent sees it, so its Claude Code never tries to
# refresh (it could not: it holds no real refresh token, and the token host is not reachable).
FAKE_EXPIRES_AT_MS = 4102444800000  # 2100-01-01
_TOKEN = re.compile(r"^[A-Za-z0-9._~+/=-]{16,4096}$")  # header-safe, no white space


class OAuthError(ValueError):
    """Credentials are missing, malformed or rejected; the message says which and what to do."""


@dataclass(frozen=True, slots=True)
class OAuthCredentials:
    access_token: str
    refresh_token: str | None  # None: a long-lived token from `claude setup-token`
    expires_at_ms: int | None  # None: no known expiry
    scopes: tuple[str, ...] = ()
    subscription: str | None = None

    def valid_for(self, now_s: float) -> float:
        """Seconds until expiry (infinite when unknown)."""
        if self.expires_at_ms is None:
            return float("inf")
        return self.expires_at_ms / 1000 - now_s

    @property
    def refreshable(self) -> bool:
        return self.refresh_token is not None


def _token(value: object, what: str) -> str:
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise OAuthError(f"{what} is missing or not a token")
    return value


def _expiry(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise OAuthError("expiresAt is not a time in milliseconds")
    return value


def _from_claude(entry: Mapping[str, Any]) -> OAuthCredentials:
    refresh = entry.get("refreshToken")
    scopes = entry.get("scopes") or []
    subscription = entry.get("subscriptionType")
    return OAuthCredentials(
        access_token=_token(entry.get("accessToken"), "claudeAiOauth.accessToken"),
        refresh_token=None if refresh is None else _token(refresh, "claudeAiOauth.refreshToken"),
        expires_at_ms=_expiry(entry.get("expiresAt")),
        scopes=tuple(str(s) for s in scopes) if isinstance(scopes, list) else (),
        subscription=str(subscription) if isinstance(subscription, str) else None,
    )


def parse_claude_file(text: str) -> OAuthCredentials:
    """Claude Code's credentials file -> credentials; OAuthError when it holds none."""
    try:
        doc = json.loads(text)
    except ValueError:
        raise OAuthError("the credentials file is not JSON") from None
    entry = doc.get(CLAUDE_KEY) if isinstance(doc, dict) else None
    if not isinstance(entry, dict):
        raise OAuthError(
            f"no {CLAUDE_KEY} in the credentials file: sign in with `claude` (or use "
            "`claude setup-token` and `ironcurtain login claude --token`)"
        )
    return _from_claude(entry)


def from_setup_token(text: str) -> OAuthCredentials:
    """A long-lived token printed by `claude setup-token`."""
    return OAuthCredentials(
        _token(text.strip(), "the setup token"), None, None, ("user:inference",)
    )


def merge_into_claude_file(text: str | None, creds: OAuthCredentials) -> str:
    """Claude Code's file with our refreshed tokens; every other field kept as it was."""
    doc: dict[str, Any] = {}
    if text:
        try:
            loaded = json.loads(text)
        except ValueError:
            raise OAuthError("the host's credentials file is not JSON; not written") from None
        if isinstance(loaded, dict):
            doc = loaded
    entry = dict(doc.get(CLAUDE_KEY) or {})
    entry["accessToken"] = creds.access_token
    if creds.refresh_token is not None:
        entry["refreshToken"] = creds.refresh_token
    if creds.expires_at_ms is not None:
        entry["expiresAt"] = creds.expires_at_ms
    if creds.scopes:
        entry["scopes"] = list(creds.scopes)
    doc[CLAUDE_KEY] = entry
    return json.dumps(doc) + "\n"


def dump_store(creds: OAuthCredentials, source: str | None) -> str:
    """The key store's entry: the credentials and the host file they came from (re-read
    before every refresh, written back after one)."""
    doc = {
        "access_token": creds.access_token,
        "refresh_token": creds.refresh_token,
        "expires_at_ms": creds.expires_at_ms,
        "scopes": list(creds.scopes),
        "subscription": creds.subscription,
        "source": source,
    }
    return json.dumps(doc, indent=2) + "\n"


def load_store(text: str) -> tuple[OAuthCredentials, str | None]:
    try:
        doc = json.loads(text)
    except ValueError:
        raise OAuthError(
            "the stored Claude login is not JSON: run `ironcurtain login claude`"
        ) from None
    if not isinstance(doc, dict):
        raise OAuthError("the stored Claude login is malformed: run `ironcurtain login claude`")
    refresh = doc.get("refresh_token")
    creds = OAuthCredentials(
        access_token=_token(doc.get("access_token"), "the stored access token"),
        refresh_token=None if refresh is None else _token(refresh, "the stored refresh token"),
        expires_at_ms=_expiry(doc.get("expires_at_ms")),
        scopes=tuple(str(s) for s in doc.get("scopes") or ()),
        subscription=doc.get("subscription") if isinstance(doc.get("subscription"), str) else None,
    )
    source = doc.get("source")
    return creds, source if isinstance(source, str) else None


def refresh_body(refresh_token: str, client_id: str) -> bytes:
    """The refresh grant, as Claude Code sends it (JSON) to the provider's token endpoint."""
    grant = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    return json.dumps(grant).encode()


def parse_grant(body: bytes, old: OAuthCredentials, now_s: float) -> OAuthCredentials:
    """The token endpoint's answer -> new credentials (the refresh token rotates; kept when
    the answer carries none)."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise OAuthError("the token endpoint's answer is not JSON") from None
    if not isinstance(doc, dict):
        raise OAuthError("the token endpoint's answer is not an object")
    expires_in = doc.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0:
        raise OAuthError("the token endpoint's answer has no expires_in")
    refresh = doc.get("refresh_token")
    scope = doc.get("scope")
    return replace(
        old,
        access_token=_token(doc.get("access_token"), "the new access token"),
        refresh_token=old.refresh_token
        if refresh is None
        else _token(refresh, "the new refresh token"),
        expires_at_ms=int((now_s + expires_in) * 1000),
        scopes=tuple(scope.split()) if isinstance(scope, str) and scope else old.scopes,
    )


def fake_credentials(creds: OAuthCredentials, fake_access: str, fake_refresh: str) -> str:
    """The agent's own `~/.claude/.credentials.json`: the same shape, fake tokens only."""
    entry = {
        "accessToken": fake_access,
        "refreshToken": fake_refresh,
        "expiresAt": FAKE_EXPIRES_AT_MS,
        "scopes": list(creds.scopes) or ["user:inference"],
        "subscriptionType": creds.subscription or "pro",
    }
    return json.dumps({CLAUDE_KEY: entry}) + "\n"
