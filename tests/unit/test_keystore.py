import io
import stat
from pathlib import Path

import pytest

from ironcurtain.cli import main
from ironcurtain.keystore import KeyStore, KeyStoreError

REAL_LOOKING = "sk-ant-api03-" + "Ab1" * 30


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys")


def test_a_stored_key_is_owner_only_and_usable(store: KeyStore) -> None:
    path = store.set("anthropic", REAL_LOOKING + "\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    assert store.checked_path("anthropic") == path
    assert path.read_text() == REAL_LOOKING + "\n"
    assert store.providers() == ["anthropic"]


@pytest.mark.parametrize(
    "value",
    ["", "   ", "sk-ant-api03-...", "your-api-key", "changeme", "<paste key>", "two words"],
)
def test_placeholders_and_empty_values_are_refused(store: KeyStore, value: str) -> None:
    with pytest.raises(KeyStoreError):
        store.set("anthropic", value)


def test_a_missing_key_says_how_to_store_one(store: KeyStore) -> None:
    with pytest.raises(KeyStoreError, match="ironcurtain keys set openai"):
        store.checked_path("openai")


def test_a_key_readable_by_others_is_refused(store: KeyStore) -> None:
    path = store.set("anthropic", REAL_LOOKING)
    path.chmod(0o644)
    with pytest.raises(KeyStoreError, match="readable by others"):
        store.checked_path("anthropic")


@pytest.mark.parametrize("name", ["../etc", "a/b", "", "UPPER", "x" * 60])
def test_provider_names_cannot_escape_the_key_folder(store: KeyStore, name: str) -> None:
    with pytest.raises(KeyStoreError, match="not a provider name"):
        store.path_for(name)


def test_keys_set_reads_stdin_and_never_prints_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IRONCURTAIN_STATE_DIR", str(tmp_path))
    monkeypatch.setattr("sys.stdin", io.StringIO(REAL_LOOKING))
    assert main(["keys", "set", "anthropic"]) == 0
    assert main(["keys", "list"]) == 0
    out = capsys.readouterr().out
    assert "anthropic" in out
    assert REAL_LOOKING not in out
