"""Keeping a Claude subscription's access token fresh, on the host, for one session's MITM.

Why here and not in the MITM: the refresh token rotates and the host's own Claude Code holds
the same one. Refreshing means reading and writing the user's `~/.claude/.credentials.json`;
a MITM that could do that could write a host file, and a MITM that held the refresh token
would hold the long-lived credential. So `ironcurtain run` (the host side) refreshes and hands
the MITM only the short-lived access token, over a unix socket (tokens.py); the MITM can ask
for a refresh but never sees the refresh token nor any host path.

The rules (each unit-tested with an injected clock):
- proactive: a token within `margin_s` of expiry is refreshed before it is handed out;
- after a 401: the MITM names the token the vendor refused (by digest); refreshed once, unless
  that is no longer the current token (someone refreshed already) or we refreshed within
  `min_interval_s` (a MITM cannot make us burn refresh tokens in a loop);
- one refresh in flight: callers wait on one lock and re-check after it;
- before a refresh the host's file is re-read: when the host's Claude Code refreshed already we
  adopt its tokens (no grant at all), and its newer refresh token is the one we spend;
- after a refresh we write back to the key store and to the host's file, the latter only if it
  still holds the refresh token we spent (else the host refreshed meanwhile: its file wins).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .oauth import (
    OAuthCredentials,
    OAuthError,
    merge_into_claude_file,
    parse_claude_file,
    parse_grant,
)


class HostFile(Protocol):
    """The host's Claude Code credentials file (None: it does not exist)."""

    def read(self) -> str | None: ...

    def write(self, text: str) -> None: ...


def digest(token: str) -> str:
    """How the MITM names a token it saw refused (the token itself need not travel back)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Counters:
    grants: int = 0  # refresh grants sent to the token endpoint
    adopted: int = 0  # times the host's newer tokens were taken instead
    written_back: int = 0


class Refresher:
    def __init__(
        self,
        creds: OAuthCredentials,
        *,
        grant: Callable[[str], bytes],  # refresh token -> the token endpoint's answer body
        save: Callable[[OAuthCredentials], None],  # the key store
        clock: Callable[[], float],  # wall clock, seconds since the epoch (expiries are)
        host: HostFile | None = None,
        margin_s: float = 300.0,
        min_interval_s: float = 10.0,
    ) -> None:
        self._creds = creds
        self._grant = grant
        self._save = save
        self._clock = clock
        self._host = host
        self._margin = margin_s
        self._min_interval = min_interval_s
        self._lock = threading.Lock()
        self._last_refresh = float("-inf")
        self.counters = Counters()

    @property
    def current(self) -> OAuthCredentials:
        return self._creds

    def token(self) -> OAuthCredentials:
        """A token valid for at least `margin_s` (refreshed first if need be)."""
        if self._fresh(self._creds):
            return self._creds
        with self._lock:
            if not self._fresh(self._creds):  # another caller may have refreshed meanwhile
                self._refresh(stale=self._creds.access_token)
            return self._creds

    def after_401(self, stale_digest: str) -> OAuthCredentials:
        """The vendor refused the token with this digest: the token to retry with."""
        with self._lock:
            if digest(self._creds.access_token) != stale_digest:
                return self._creds  # refreshed since that request left
            if self._clock() - self._last_refresh < self._min_interval:
                return self._creds  # just refreshed: a second 401 is the vendor's answer
            self._refresh(stale=self._creds.access_token)
            return self._creds

    def _fresh(self, creds: OAuthCredentials) -> bool:
        return creds.valid_for(self._clock()) > self._margin

    def _refresh(self, stale: str) -> None:
        """Under the lock: adopt the host's newer tokens, else spend a refresh token."""
        host = self._read_host()
        known = (stale, self._creds.access_token)
        if host is not None and host.access_token not in known and self._fresh(host):
            self._creds = host
            self._save(host)
            self.counters.adopted += 1
            self._last_refresh = self._clock()
            return
        spend = self._creds
        if host is not None and host.refresh_token and host.refresh_token != spend.refresh_token:
            spend = host  # ours was rotated away by the host's Claude Code
        if spend.refresh_token is None:
            raise OAuthError(
                "the long-lived Claude token was refused or expired: run `claude setup-token` "
                "and `ironcurtain login claude --token`"
            )
        now = self._clock()
        self.counters.grants += 1
        new = parse_grant(self._grant(spend.refresh_token), spend, now)
        self._creds = new
        self._last_refresh = now
        self._save(new)
        self._write_back(spend.refresh_token, new)

    def _read_host(self) -> OAuthCredentials | None:
        if self._host is None:
            return None
        text = self._host.read()
        if text is None:
            return None
        try:
            return parse_claude_file(text)
        except OAuthError:
            return None  # the user's file is theirs to fix; we keep our own copy

    def _write_back(self, spent: str, new: OAuthCredentials) -> None:
        if self._host is None:
            return
        text = self._host.read()  # read again right before writing: the narrowest window
        if text is None:
            return
        try:
            now_there = parse_claude_file(text)
        except OAuthError:
            return
        if now_there.refresh_token != spent:
            return  # the host refreshed meanwhile: its file is newer than ours
        self._host.write(merge_into_claude_file(text, new))
        self.counters.written_back += 1
