"""`ironcurtain login claude` and a session's subscription: the store, the agent's files and
environment, the MITM's settings entry."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from ironcurtain.agents.adapter import Endpoints
from ironcurtain.agents.claude_code import FAKE_KEY_ENV, ClaudeCode
from ironcurtain.keystore import KeyStore, KeyStoreError
from ironcurtain.mitm import settings as mitm_settings
from ironcurtain.mitm.providers import builtin
from ironcurtain.session import subscription
from ironcurtain.session.login import claude_credentials_file, import_login
from ironcurtain.session.oauth import STORE_NAME, OAuthError, load_store

ACCESS = "sk-ant-oat01-" + "A" * 40
REFRESH = "sk-ant-ort01-" + "R" * 40
ENDPOINTS = Endpoints("http://sidecar:8080/mcp", "http://sidecar:3128", "/run/ca.pem")


def claude_file(tmp_path: Path) -> Path:
    path = tmp_path / "home" / ".claude" / ".credentials.json"
    path.parent.mkdir(parents=True)
    entry = {"accessToken": ACCESS, "refreshToken": REFRESH, "expiresAt": 4_000_000_000_000}
    path.write_text(json.dumps({"claudeAiOauth": {**entry, "subscriptionType": "max"}}))
    return path


def test_login_imports_claude_codes_file_into_an_owner_only_store(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    path, creds = import_login(store, file=claude_file(tmp_path))
    assert path == store.root / STORE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored, source = load_store(path.read_text())
    assert stored == creds
    assert source == str(tmp_path / "home/.claude/.credentials.json")
    assert store.providers() == [STORE_NAME]  # no temporary file left beside it


def test_login_with_a_setup_token_stores_a_long_lived_login(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    _, creds = import_login(store, token=ACCESS + "\n")
    assert not creds.refreshable
    assert load_store((store.root / STORE_NAME).read_text())[1] is None


def test_login_without_a_credentials_file_says_how_to_sign_in(tmp_path: Path) -> None:
    with pytest.raises(OAuthError, match="sign in with `claude`"):
        import_login(KeyStore(tmp_path / "keys"), file=tmp_path / "none.json")


def test_the_credentials_file_is_found_where_claude_code_keeps_it() -> None:
    assert claude_credentials_file({"HOME": "/h"}) == Path("/h/.claude/.credentials.json")
    assert claude_credentials_file({"HOME": "/h", "CLAUDE_CONFIG_DIR": "/c"}) == Path(
        "/c/.credentials.json"
    )


def test_no_stored_login_means_the_api_key_path(tmp_path: Path) -> None:
    assert subscription.load(KeyStore(tmp_path / "keys"), builtin()["anthropic"]) is None
    assert subscription.load(KeyStore(tmp_path / "keys"), builtin()["openai"]) is None


def test_a_stored_login_readable_by_others_is_refused(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    path, _ = import_login(store, file=claude_file(tmp_path))
    path.chmod(0o644)
    with pytest.raises(KeyStoreError, match="readable by others"):
        subscription.load(store, builtin()["anthropic"])


def test_a_session_on_a_subscription_gives_the_agent_fakes_only(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    import_login(store, file=claude_file(tmp_path))
    sub = subscription.load(store, builtin()["anthropic"])
    assert sub is not None
    agent = ClaudeCode(subscription=True)
    env = agent.environment(ENDPOINTS, {"anthropic": sub.fake_access})
    files = {f.path: f.content for f in agent.orientation_files(ENDPOINTS)}
    everything = json.dumps([env, files, sub.agent_credentials(), sub.mitm_entry()])
    assert ACCESS not in everything
    assert REFRESH not in everything
    assert FAKE_KEY_ENV not in env
    assert ".claude/settings.json" not in files  # no apiKeyHelper: it would outrank the login
    creds = json.loads(sub.agent_credentials())["claudeAiOauth"]
    assert creds["accessToken"] == sub.fake_access
    assert creds["accessToken"].startswith("sk-ant-oat01-")
    assert creds["refreshToken"].startswith("sk-ant-ort01-")
    assert creds["subscriptionType"] == "max"


def test_an_api_key_session_keeps_its_api_key_helper() -> None:
    files = {f.path: f.content for f in ClaudeCode().orientation_files(ENDPOINTS)}
    helper = json.loads(files[".claude/settings.json"])
    assert helper == {"apiKeyHelper": "/usr/local/bin/ironcurtain-api-key"}


def test_the_mitm_settings_entry_names_the_socket_and_no_real_file(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    import_login(store, file=claude_file(tmp_path))
    sub = subscription.load(store, builtin()["anthropic"])
    assert sub is not None
    doc = {
        "ca_dir": "/ca",
        "audit": "/a.jsonl",
        "keys": {"anthropic": sub.mitm_entry(), "claude-platform": {}},
    }
    parsed = mitm_settings.parse(doc)
    assert parsed.oauth_sockets == {"anthropic": Path(subscription.SOCKET_IN_MITM)}
    assert parsed.real_key_files == {}
    assert parsed.fake_keys == {"anthropic": sub.fake_access}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"fake": "sk-ant-api03-xxxxxxxxxxxxxxxx", "oauth_socket": "/s"}, "sk-ant-oat01-"),
        (
            {"fake": "sk-ant-oat01-xxxxxxxxxxxxxxxx", "oauth_socket": "/s", "real_file": "/k"},
            "exactly",
        ),
    ],
)
def test_a_malformed_subscription_entry_is_refused(entry: dict[str, str], message: str) -> None:
    doc = {"ca_dir": "/ca", "audit": "/a.jsonl", "keys": {"anthropic": entry}}
    with pytest.raises(mitm_settings.ConfigError, match=message):
        mitm_settings.parse(doc)


def test_a_provider_without_a_subscription_login_cannot_take_a_socket() -> None:
    doc = {
        "ca_dir": "/ca",
        "audit": "/a.jsonl",
        "keys": {"openai": {"fake": "sk-proj-xxxxxxxxxxxx", "oauth_socket": "/s"}},
    }
    with pytest.raises(mitm_settings.ConfigError, match="no subscription login"):
        mitm_settings.parse(doc)
