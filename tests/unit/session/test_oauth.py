"""Claude subscription credentials: import, the store, the grant, the agent's fake."""

from __future__ import annotations

import json

import pytest

from ironcurtain.mitm.fake_keys import new_fake_key
from ironcurtain.mitm.providers import builtin
from ironcurtain.session import oauth
from ironcurtain.session.oauth import OAuthCredentials, OAuthError

ACCESS = "sk-ant-oat01-" + "A" * 40
REFRESH = "sk-ant-ort01-" + "R" * 40
CLAUDE_FILE = json.dumps(
    {
        "claudeAiOauth": {
            "accessToken": ACCESS,
            "refreshToken": REFRESH,
            "expiresAt": 1_900_000_000_000,
            "scopes": ["user:inference", "user:profile"],
            "subscriptionType": "max",
        },
        "mcpOAuth": {"other": "kept"},
    }
)


def test_claude_codes_credentials_file_is_imported() -> None:
    creds = oauth.parse_claude_file(CLAUDE_FILE)
    assert creds == OAuthCredentials(
        ACCESS, REFRESH, 1_900_000_000_000, ("user:inference", "user:profile"), "max"
    )
    assert creds.refreshable


def test_a_setup_token_is_long_lived_and_not_refreshable() -> None:
    creds = oauth.from_setup_token(ACCESS + "\n")
    assert creds.access_token == ACCESS
    assert not creds.refreshable
    assert creds.valid_for(1e12) == float("inf")


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "{}",
        '{"claudeAiOauth": "x"}',
        '{"claudeAiOauth": {"refreshToken": "sk-ant-ort01-xxxxxxxxxxxxxxxxxxxxx"}}',
        '{"claudeAiOauth": {"accessToken": "has space in it and more"}}',
        json.dumps({"claudeAiOauth": {"accessToken": ACCESS, "expiresAt": "soon"}}),
        json.dumps({"claudeAiOauth": {"accessToken": ACCESS, "refreshToken": 5}}),
    ],
)
def test_a_file_without_usable_credentials_is_refused(text: str) -> None:
    with pytest.raises(OAuthError):
        oauth.parse_claude_file(text)


def test_error_messages_never_carry_a_token() -> None:
    bad = json.dumps({"claudeAiOauth": {"accessToken": ACCESS, "expiresAt": "x"}})
    with pytest.raises(OAuthError) as caught:
        oauth.parse_claude_file(bad)
    assert ACCESS not in str(caught.value)


def test_the_store_round_trips_credentials_and_their_source() -> None:
    creds = oauth.parse_claude_file(CLAUDE_FILE)
    text = oauth.dump_store(creds, "/home/u/.claude/.credentials.json")
    assert oauth.load_store(text) == (creds, "/home/u/.claude/.credentials.json")


def test_write_back_keeps_every_other_field_of_the_users_file() -> None:
    new = OAuthCredentials(
        "sk-ant-oat01-" + "N" * 40, "sk-ant-ort01-" + "M" * 40, 2_000_000_000_000
    )
    merged = json.loads(oauth.merge_into_claude_file(CLAUDE_FILE, new))
    assert merged["mcpOAuth"] == {"other": "kept"}
    entry = merged["claudeAiOauth"]
    assert (entry["accessToken"], entry["refreshToken"], entry["expiresAt"]) == (
        new.access_token,
        new.refresh_token,
        new.expires_at_ms,
    )
    assert entry["subscriptionType"] == "max"


def test_the_refresh_grant_is_claude_codes_json_and_its_answer_rotates_the_token() -> None:
    body = json.loads(oauth.refresh_body(REFRESH, "cid"))
    assert body == {"grant_type": "refresh_token", "refresh_token": REFRESH, "client_id": "cid"}
    old = oauth.parse_claude_file(CLAUDE_FILE)
    answer = {
        "access_token": "sk-ant-oat01-" + "B" * 40,
        "refresh_token": "sk-ant-ort01-" + "S" * 40,
    }
    new = oauth.parse_grant(json.dumps({**answer, "expires_in": 600}).encode(), old, 1000.0)
    assert new.access_token == answer["access_token"]
    assert new.refresh_token == answer["refresh_token"]
    assert new.expires_at_ms == 1_600_000
    assert new.subscription == "max"


@pytest.mark.parametrize(
    "answer",
    [b"nope", b"[]", b'{"access_token": "sk-ant-oat01-xxxxxxxxxxxxxxxx"}', b'{"expires_in": 5}'],
)
def test_a_malformed_grant_answer_is_refused(answer: bytes) -> None:
    with pytest.raises(OAuthError):
        oauth.parse_grant(answer, oauth.parse_claude_file(CLAUDE_FILE), 0.0)


def test_the_agents_fake_credentials_have_the_real_shape_and_no_real_token() -> None:
    spec = builtin()["anthropic"].oauth
    assert spec is not None
    creds = oauth.parse_claude_file(CLAUDE_FILE)
    fake_access = new_fake_key(spec.token_prefix)
    fake_refresh = new_fake_key(spec.refresh_prefix)
    text = oauth.fake_credentials(creds, fake_access, fake_refresh)
    assert ACCESS not in text
    assert REFRESH not in text
    parsed = oauth.parse_claude_file(text)  # what the agent's Claude Code reads
    assert parsed.access_token.startswith("sk-ant-oat01-")
    assert parsed.refresh_token is not None
    assert parsed.refresh_token.startswith("sk-ant-ort01-")
    assert parsed.expires_at_ms == oauth.FAKE_EXPIRES_AT_MS  # it never tries to refresh
    assert parsed.subscription == "max"
