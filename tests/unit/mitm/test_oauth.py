"""Claude subscriptions through the real proxy: the fake OAuth token swapped for the host's
access token, a refresh before expiry and one retry after a 401, the host's token socket."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ironcurtain.fakellm.oauth import Issuer
from ironcurtain.mitm.fake_keys import new_fake_key
from ironcurtain.mitm.providers import builtin
from ironcurtain.session.oauth import OAuthCredentials, refresh_body
from ironcurtain.session.refresh import Refresher
from ironcurtain.session.tokens import TokenServer, grant_client

from .harness import Stack, post, raw, start

SPEC = builtin()["anthropic"].oauth
assert SPEC is not None
BETA = b"anthropic-beta: oauth-2025-04-20,claude-code-20250219\r\n"
ACCESS = "sk-ant-oat01-REAL-access-token-never-shown-0000"
REFRESH = "sk-ant-ort01-REAL-refresh-token-never-shown-000"


@dataclass
class Clock:
    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Sub:
    stack: Stack
    refresher: Refresher
    server: TokenServer
    vendor_clock: Clock
    fake: str

    def send(self, auth: bytes | None = None, extra: bytes = BETA) -> tuple[int, str, bytes]:
        header = b"authorization: Bearer " + self.fake.encode() if auth is None else auth
        reply = raw(self.stack, "api.anthropic.com", post("/v1/messages", header, extra=extra))
        return reply.status, reply.headers.get("x-fake-key-sha256", ""), reply.body


class Forgetful(dict[str, float]):
    """A vendor that honours no access token, old or new."""

    def __setitem__(self, key: str, value: float) -> None:
        pass


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def subscription(expires_in_s: float) -> Iterator[Sub]:
    short = Path(tempfile.mkdtemp(prefix="ic-oauth-"))  # a unix socket path is short
    sock = short / "token.sock"
    fake = new_fake_key(SPEC.token_prefix)
    stack = start(short / "stack", keys={"anthropic": {"fake": fake, "oauth_socket": str(sock)}})
    vendor_clock = Clock()
    issuer = Issuer(lifetime_s=3600, clock=vendor_clock)
    issuer.seed(ACCESS, REFRESH, time.time() + expires_in_s)
    stack.vendor.oauth = issuer
    post_grant = grant_client(SPEC.token_url, stack.vendor_ca, ("127.0.0.1", stack.vendor_port))
    creds = OAuthCredentials(ACCESS, REFRESH, int((time.time() + expires_in_s) * 1000))
    refresher = Refresher(
        creds,
        grant=lambda rt: post_grant(refresh_body(rt, SPEC.client_id)),
        save=lambda _: None,
        clock=time.time,
    )
    server = TokenServer(sock, refresher).start()
    try:
        yield Sub(stack, refresher, server, vendor_clock, fake)
    finally:
        server.close()
        stack.close()


@pytest.fixture
def sub() -> Iterator[Sub]:
    yield from subscription(3600)


def no_real_token_in(text: str, sub: Sub) -> None:
    for secret in (ACCESS, REFRESH, sub.refresher.current.access_token):
        assert secret not in text
    assert str(sub.refresher.current.refresh_token) not in text


def test_the_fake_oauth_token_is_swapped_for_the_hosts_access_token(sub: Sub) -> None:
    status, seen, body = sub.send()
    assert status == 200, body
    assert seen == sha(ACCESS)  # the vendor got the real token, as a bearer
    no_real_token_in(body.decode(), sub)
    no_real_token_in(sub.stack.audit_path.read_text(), sub)
    assert sub.refresher.counters.grants == 0


def test_the_oauth_beta_is_added_when_the_agent_leaves_it_out(sub: Sub) -> None:
    status, seen, _ = sub.send(extra=b"anthropic-beta: claude-code-20250219\r\n")
    assert (status, seen) == (200, sha(ACCESS))
    betas = sub.stack.vendor.seen[-1].headers["anthropic-beta"]
    assert betas == ["claude-code-20250219,oauth-2025-04-20"]


def test_an_expired_token_is_refreshed_by_the_host_and_the_request_sent_again(
    sub: Sub,
) -> None:
    assert sub.send()[0] == 200
    sub.vendor_clock.offset = 7200  # the vendor now says the token expired (the host thought not)
    status, seen, body = sub.send()
    assert status == 200, body  # the agent saw one answer: the retried one
    new = sub.refresher.current
    assert new.access_token != ACCESS
    assert seen == sha(new.access_token)
    assert sub.refresher.counters.grants == 1
    assert sub.stack.vendor.oauth is not None
    assert sub.stack.vendor.oauth.grants == 1
    audit = sub.stack.audit_path.read_text()
    assert '"rule":"oauth"' in audit.replace(" ", "")
    no_real_token_in(audit, sub)
    assert sub.send()[0] == 200  # the next request goes with the new token at once
    assert sub.refresher.counters.grants == 1


def test_a_second_401_after_the_refresh_goes_back_to_the_agent(sub: Sub) -> None:
    assert sub.stack.vendor.oauth is not None
    sub.stack.vendor.oauth.access = Forgetful()  # every token revoked, even fresh ones
    status, _, body = sub.send()
    assert status == 401
    assert b"IronCurtain" not in body  # the vendor's own answer, after one retry
    assert sub.refresher.counters.grants == 1  # not a loop


def test_a_token_near_expiry_is_refreshed_before_it_is_sent() -> None:
    for sub in subscription(30):  # inside both margins
        status, seen, _ = sub.send()
        assert status == 200
        assert seen == sha(sub.refresher.current.access_token)
        assert sub.refresher.counters.grants == 1
        assert all(
            "oauth" not in json.loads(line).get("rule", "")
            for line in sub.stack.audit_path.read_text().splitlines()
        )  # no 401 on the way: refreshed proactively


@pytest.mark.parametrize(
    "auth",
    [
        b"x-api-key: FAKE",  # the fake token in the API-key header
        b"authorization: Bearer FAKE\r\nx-api-key: FAKE",
        b"authorization: Bearer sk-ant-oat01-not-the-session-token-0000",
        b"authorization: Bearer " + ACCESS.encode(),  # even the real token is not ours to send
        b"x-nothing: 1",
    ],
)
def test_anything_but_the_sessions_fake_bearer_token_is_refused(sub: Sub, auth: bytes) -> None:
    status, _, body = sub.send(auth=auth.replace(b"FAKE", sub.fake.encode()))
    assert status in (401, 403)
    assert b"IronCurtain" in body
    assert not sub.stack.vendor.seen  # never forwarded


def test_no_host_to_ask_is_a_clear_503(sub: Sub) -> None:
    sub.server.close()
    status, _, body = sub.send()
    assert status == 503
    assert b"subscription" in body
    assert not sub.stack.vendor.seen


GOOD_OAUTH = {
    "token_prefix": "tok-",
    "refresh_prefix": "ref-",
    "token_url": "https://auth.example.com/v1/oauth/token",
    "client_id": "c",
    "beta": "b",
}


@pytest.mark.parametrize(
    "change",
    [
        {"token_url": "http://auth.example.com/v1/oauth/token"},  # not TLS
        {"token_url": "https://10.0.0.1/token"},  # an IP literal
        {"token_url": "https://auth.example.com"},  # no path
        {"token_prefix": "t"},
        {"extra": "x"},
    ],
)
def test_a_malformed_oauth_provider_entry_is_refused(change: dict[str, str]) -> None:
    from ironcurtain.mitm.providers import ConfigError, parse

    raw = {
        "hosts": ["api.example.com"],
        "auth": "bearer",
        "key_prefix": "sk-x-",
        "oauth": {**GOOD_OAUTH, **change},
    }
    with pytest.raises(ConfigError, match="oauth"):
        parse({"providers": {"x": raw}})
    raw["oauth"] = GOOD_OAUTH  # control
    assert parse({"providers": {"x": raw}})["x"].oauth is not None
