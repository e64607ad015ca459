"""Fake (sentinel) keys: what the agent holds instead of real ones. Pure functions."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

FAKE_KEY_BITS = 192


def new_fake_key(prefix: str) -> str:
    """prefix + 192 bits from the OS CSPRNG, URL-safe: looks like a key to SDKs, is worthless."""
    return prefix + secrets.token_urlsafe(FAKE_KEY_BITS // 8)


def same(presented: str, expected: str) -> bool:
    """Constant-time comparison (timing does not reveal how much of the key matched)."""
    return hmac.compare_digest(presented.encode(), expected.encode())


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    status: int  # 0 when ok
    reason: str
    foreign: str | None = None  # the provider whose fake key was presented elsewhere


def check(presented: str | None, provider: str, fakes: Mapping[str, str]) -> Verdict:
    """Is `presented` this provider's fake key? Every fake is compared, so timing is uniform."""
    if presented is None or presented == "":
        return Verdict(False, 401, "no API key presented")
    matched = [name for name, fake in fakes.items() if same(presented, fake)]
    if provider in matched:
        return Verdict(True, 0, "fake key accepted")
    if matched:
        return Verdict(
            False, 403, f"a key issued for {matched[0]} was sent to {provider}", matched[0]
        )
    return Verdict(False, 401, "the API key is not the one this session issued; never forwarded")


def presented_key(auth_header: str, value: str | None) -> str | None:
    """Extract the key from its header value ("Bearer X" for authorization)."""
    if value is None:
        return None
    if auth_header == "authorization":
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None
    return value.strip()
