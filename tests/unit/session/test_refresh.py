"""The host's Refresher: before expiry, after a 401, one in flight, re-read, write back."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

import pytest

from ironcurtain.session import oauth
from ironcurtain.session.oauth import OAuthCredentials, OAuthError
from ironcurtain.session.refresh import Refresher, digest

T0 = 1_000_000.0


def tok(kind: str, n: int) -> str:
    return f"sk-ant-{kind}01-" + f"{n:040d}"


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Vendor:
    """The token endpoint: rotating refresh tokens, a new access token per grant."""

    clock: Clock
    valid: set[str] = field(default_factory=lambda: {tok("ort", 0)})
    spent: list[str] = field(default_factory=list)
    n: int = 0
    gate: threading.Event | None = None

    def grant(self, refresh: str) -> bytes:
        if self.gate is not None:
            assert self.gate.wait(5)
        self.spent.append(refresh)
        if refresh not in self.valid:
            raise OAuthError("invalid_grant")
        self.valid.discard(refresh)
        self.n += 1
        self.valid.add(tok("ort", self.n))
        doc = {"access_token": tok("oat", self.n), "refresh_token": tok("ort", self.n)}
        return json.dumps({**doc, "expires_in": 3600}).encode()


@dataclass
class File:
    text: str | None
    writes: int = 0
    on_read: list[str] = field(default_factory=list)  # texts the host "writes" between reads

    def read(self) -> str | None:
        if self.on_read:
            self.text = self.on_read.pop(0)
        return self.text

    def write(self, text: str) -> None:
        self.text = text
        self.writes += 1


def claude_file(access: str, refresh: str, expires_s: float) -> str:
    entry = {"accessToken": access, "refreshToken": refresh, "expiresAt": int(expires_s * 1000)}
    return json.dumps({"claudeAiOauth": entry, "other": 1})


def setup(
    expires_in_s: float = 3600, host: File | None = None
) -> tuple[Refresher, Vendor, Clock, list[OAuthCredentials]]:
    clock = Clock()
    vendor = Vendor(clock)
    saved: list[OAuthCredentials] = []
    creds = OAuthCredentials(tok("oat", 0), tok("ort", 0), int((T0 + expires_in_s) * 1000))
    refresher = Refresher(
        creds, grant=vendor.grant, save=saved.append, clock=clock, host=host, margin_s=300
    )
    return refresher, vendor, clock, saved


def test_a_valid_token_is_handed_out_without_a_refresh() -> None:
    refresher, vendor, _, _ = setup()
    assert refresher.token().access_token == tok("oat", 0)
    assert vendor.n == 0


def test_a_token_near_expiry_is_refreshed_before_it_is_handed_out() -> None:
    refresher, vendor, clock, saved = setup()
    clock.now = T0 + 3600 - 299  # inside the margin
    creds = refresher.token()
    assert creds.access_token == tok("oat", 1)
    assert vendor.spent == [tok("ort", 0)]
    assert saved == [creds]  # the key store gets what we refreshed
    assert refresher.token() is creds  # and it is not refreshed again


def test_only_one_refresh_is_in_flight() -> None:
    refresher, vendor, clock, _ = setup()
    clock.now = T0 + 4000  # expired
    vendor.gate = threading.Event()
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(refresher.token().access_token))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    vendor.gate.set()
    for thread in threads:
        thread.join(5)
    assert vendor.spent == [tok("ort", 0)]  # one grant; a second would spend a rotated token
    assert results == [tok("oat", 1)] * 8


def test_a_401_on_the_current_token_refreshes_once() -> None:
    refresher, vendor, _, _ = setup()
    assert refresher.after_401(digest(tok("oat", 0))).access_token == tok("oat", 1)
    assert vendor.n == 1


def test_a_401_on_an_older_token_returns_the_current_one_without_a_refresh() -> None:
    refresher, vendor, clock, _ = setup()
    refresher.after_401(digest(tok("oat", 0)))
    clock.now += 60
    assert refresher.after_401(digest(tok("oat", 0))).access_token == tok("oat", 1)
    assert vendor.n == 1


def test_a_mitm_cannot_make_the_host_burn_refresh_tokens_in_a_loop() -> None:
    refresher, vendor, clock, _ = setup()
    for _ in range(5):
        refresher.after_401(digest(refresher.current.access_token))
    assert vendor.n == 1  # within min_interval_s: the vendor's 401 stands
    clock.now += 11
    refresher.after_401(digest(refresher.current.access_token))
    assert vendor.n == 2  # control: later, a refresh again


def test_before_a_refresh_the_hosts_newer_tokens_are_adopted_without_a_grant() -> None:
    host = File(claude_file(tok("oat", 0), tok("ort", 0), T0 + 3600))
    refresher, vendor, clock, saved = setup(host=host)
    clock.now = T0 + 3500
    # The host's own Claude Code refreshed meanwhile (its refresh token rotated ours away).
    host.text = claude_file(tok("oat", 7), tok("ort", 7), T0 + 7200)
    vendor.valid = {tok("ort", 7)}
    creds = refresher.token()
    assert creds.access_token == tok("oat", 7)
    assert vendor.spent == []
    assert saved == [creds]
    assert host.writes == 0


def test_an_expired_host_token_still_gives_us_its_newer_refresh_token_to_spend() -> None:
    host = File(claude_file(tok("oat", 0), tok("ort", 0), T0 + 3600))
    refresher, vendor, clock, _ = setup(host=host)
    host.text = claude_file(tok("oat", 5), tok("ort", 5), T0 + 100)  # host refreshed, then idled
    vendor.valid = {tok("ort", 5)}
    clock.now = T0 + 4000
    vendor.n = 5
    creds = refresher.token()
    assert vendor.spent == [tok("ort", 5)]  # not our rotated-away one
    assert creds.access_token == tok("oat", 6)


def test_what_we_refreshed_is_written_back_to_the_hosts_file() -> None:
    host = File(claude_file(tok("oat", 0), tok("ort", 0), T0 + 3600))
    refresher, _, clock, _ = setup(host=host)
    clock.now = T0 + 4000
    refresher.token()
    assert host.writes == 1
    written = json.loads(host.text or "")
    assert written["other"] == 1  # the rest of the user's file is kept
    assert oauth.parse_claude_file(host.text or "").refresh_token == tok("ort", 1)


def test_no_write_back_when_the_host_refreshed_while_we_did() -> None:
    before = claude_file(tok("oat", 0), tok("ort", 0), T0 + 100)
    racing = claude_file(tok("oat", 9), tok("ort", 9), T0 + 7200)
    host = File(before, on_read=[before, racing])  # second read: right before writing
    refresher, _, clock, _ = setup(host=host)
    clock.now = T0 + 4000
    refresher.token()
    assert host.writes == 0
    assert host.text == racing  # the host's file wins


def test_an_unreadable_host_file_is_left_alone_and_ours_is_used() -> None:
    host = File("{ not json")
    refresher, vendor, clock, _ = setup(host=host)
    clock.now = T0 + 4000
    assert refresher.token().access_token == tok("oat", 1)
    assert host.writes == 0
    assert vendor.n == 1


def test_a_long_lived_token_refused_says_how_to_renew_it() -> None:
    clock = Clock()
    refresher = Refresher(
        oauth.from_setup_token(tok("oat", 3)),
        grant=lambda _: b"",
        save=lambda _: None,
        clock=clock,
    )
    assert refresher.token().access_token == tok("oat", 3)
    with pytest.raises(OAuthError, match="setup-token"):
        refresher.after_401(digest(tok("oat", 3)))
