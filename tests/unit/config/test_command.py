from pathlib import Path

import pytest

from ironcurtain import home
from ironcurtain.cli import main


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(home, "locate", lambda: home.Home(tmp_path, checkout=True))
    monkeypatch.chdir("/")  # found from the package's place, not from the current directory
    for name in ("BASE_IMAGE", "EXTRA_CA_CERT", "IRONCURTAIN_IMAGE_TAG", "XDG_CONFIG_HOME",
                 "IRONCURTAIN_BUILTIN_BUDGETS", "IRONCURTAIN_RUNTIME"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def test_settings_show_each_value_and_its_source(
    checkout: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (checkout / ".env").write_text("EXTRA_CA_CERT=/corp.pem\n")
    monkeypatch.setenv("IRONCURTAIN_IMAGE_TAG", "wt")
    assert main(["settings"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "BASE_IMAGE=debian:bookworm-slim  # default",
        f"EXTRA_CA_CERT=/corp.pem  # {checkout / '.env'}",
        "IRONCURTAIN_IMAGE_TAG=wt  # environment",
        "IRONCURTAIN_RUNTIME=auto  # default",
        "IRONCURTAIN_BUILTIN_BUDGETS=  # default",
    ]
    assert main(["settings", "EXTRA_CA_CERT"]) == 0
    assert capsys.readouterr().out == "/corp.pem\n"


def test_settings_refuse_an_unknown_key_and_a_bad_file(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["settings", "NOPE"]) == 1
    assert "unknown setting NOPE" in capsys.readouterr().out
    (checkout / ".env").write_text("EXTRA_CA_CERT=$HOME/x\n")
    assert main(["settings", "BASE_IMAGE"]) == 1
    assert f"{checkout / '.env'}:1:" in capsys.readouterr().out


def test_images_build_refuses_a_secret_in_dotenv_pointing_at_the_key_store(
    checkout: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import docker

    monkeypatch.setattr(docker, "from_env", lambda: object())
    (checkout / ".env").write_text("ANTHROPIC_API_KEY=sk-ant-1\n")
    assert main(["images", "build"]) == 1
    assert "key store" in capsys.readouterr().out


def test_an_installed_copy_reads_no_dotenv(
    checkout: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A wheel's home is package data: a .env there (or in the current directory) is not a setting.
    (checkout / ".env").write_text("EXTRA_CA_CERT=/corp.pem\n")
    monkeypatch.setattr(home, "locate", lambda: home.Home(checkout, checkout=False))
    monkeypatch.chdir(checkout)
    assert main(["settings", "EXTRA_CA_CERT"]) == 0
    assert capsys.readouterr().out == "\n"
