"""The MITM's side of a subscription session: the real access token, asked of the host.

The host's `ironcurtain run` holds the refresh token and refreshes (session/refresh.py); the
MITM asks over a unix socket (session/tokens.py has the protocol) for the current access token
and, after the vendor answered 401, for a refreshed one. The token is cached until `margin_s`
before its expiry; one request to the host in flight at a time (an asyncio lock).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

from .errors import Refusal

_HEADER_TOKEN = re.compile(r"^[\x21-\x7e]{16,4096}$")  # visible ASCII: safe in a header
ASK_TIMEOUT_S = 40.0  # the host may be waiting on the token endpoint (30 s) itself


class TokenSource:
    def __init__(
        self,
        socket_path: Path,
        clock: Callable[[], float] = time.time,
        margin_s: float = 60.0,
    ) -> None:
        self._path = socket_path
        self._clock = clock
        self._margin = margin_s
        self._token: str | None = None
        self._expires_at_s = float("-inf")
        self._lock = asyncio.Lock()
        self.asked = 0  # requests sent to the host (tests)

    async def current(self) -> str:
        """The access token to send upstream (asked of the host when near its expiry)."""
        if self._token is not None and self._clock() < self._expires_at_s - self._margin:
            return self._token
        async with self._lock:
            if self._token is None or self._clock() >= self._expires_at_s - self._margin:
                await self._ask({"want": "token"})
            assert self._token is not None  # _ask set it or raised
            return self._token

    async def refused(self, token: str) -> str:
        """The vendor answered 401 to `token`: the one to retry with (the host refreshes once)."""
        async with self._lock:
            if self._token is not None and self._token != token:
                return self._token  # refreshed since that request left
            refused = hashlib.sha256(token.encode()).hexdigest()
            await self._ask({"want": "refresh", "refused": refused})
            assert self._token is not None
            return self._token

    async def _ask(self, request: dict[str, str]) -> None:
        self.asked += 1
        try:
            async with asyncio.timeout(ASK_TIMEOUT_S):
                reader, writer = await asyncio.open_unix_connection(str(self._path))
                try:
                    writer.write(json.dumps(request).encode() + b"\n")
                    await writer.drain()
                    line = await reader.readline()
                finally:
                    writer.close()
        except (OSError, TimeoutError):
            raise Refusal(
                503, "oauth", "the subscription's token is unavailable (the host did not answer)"
            ) from None
        try:
            reply = json.loads(line)
        except ValueError:
            reply = {"error": "a malformed answer"}
        if not isinstance(reply, dict) or "error" in reply:
            error = reply.get("error") if isinstance(reply, dict) else "a malformed answer"
            raise Refusal(503, "oauth", f"the subscription's token is unavailable: {error}")
        token, expires = reply.get("access_token"), reply.get("expires_at_ms")
        if not isinstance(token, str) or not _HEADER_TOKEN.match(token):
            raise Refusal(503, "oauth", "the host's token is not a header-safe token")
        self._token = token
        self._expires_at_s = expires / 1000 if isinstance(expires, int) else float("inf")
