from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.config.settings import (
    DEFAULT_BASE_IMAGE,
    Settings,
    SettingsError,
    load,
    parse_dotenv,
    parse_user_config,
    resolve,
    user_config_path,
)

ENV, USER, DOTENV = {"BASE_IMAGE": "env:1"}, {"BASE_IMAGE": "user:1"}, {"BASE_IMAGE": "dotenv:1"}


@pytest.mark.parametrize(
    ("environ", "user", "dotenv", "expected", "source"),
    [
        (ENV, USER, DOTENV, "env:1", "environment"),
        ({}, USER, DOTENV, "user:1", "user config"),
        ({}, {}, DOTENV, "dotenv:1", ".env"),
        ({}, {}, {}, DEFAULT_BASE_IMAGE, "default"),
        # make exports a variable it never set as empty: that must not shadow a file
        ({"BASE_IMAGE": ""}, USER, DOTENV, "user:1", "user config"),
        ({"BASE_IMAGE": "  "}, {}, DOTENV, "dotenv:1", ".env"),
        ({}, {"BASE_IMAGE": ""}, DOTENV, "dotenv:1", ".env"),
    ],
)
def test_each_setting_comes_from_the_first_layer_that_sets_it(
    environ: dict[str, str],
    user: dict[str, str],
    dotenv: dict[str, str],
    expected: str,
    source: str,
) -> None:
    settings = resolve(environ, user, dotenv)
    assert settings.base_image == expected
    assert dict(settings.sources)["BASE_IMAGE"] == source


def test_layers_are_chosen_per_key() -> None:
    settings = resolve(
        {"IRONCURTAIN_IMAGE_TAG": "wt"}, {"EXTRA_CA_CERT": "/u.pem"}, {"BASE_IMAGE": "d:1"}
    )
    assert settings == Settings("d:1", Path("/u.pem"), "wt", "auto", settings.sources)
    assert resolve({}).as_env() == {
        "BASE_IMAGE": DEFAULT_BASE_IMAGE,
        "EXTRA_CA_CERT": "",
        "IRONCURTAIN_IMAGE_TAG": "latest",
        "IRONCURTAIN_RUNTIME": "auto",
        "IRONCURTAIN_BUILTIN_BUDGETS": "",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("# a comment\n\n   \n", {}),
        ("BASE_IMAGE=debian:bookworm-slim\n", {"BASE_IMAGE": "debian:bookworm-slim"}),
        ("export BASE_IMAGE=x:1", {"BASE_IMAGE": "x:1"}),
        ("BASE_IMAGE=x:1   # the usual one", {"BASE_IMAGE": "x:1"}),
        ('EXTRA_CA_CERT="/path with space/ca.pem"', {"EXTRA_CA_CERT": "/path with space/ca.pem"}),
        ("EXTRA_CA_CERT='/a/b.pem'  # corp", {"EXTRA_CA_CERT": "/a/b.pem"}),
        ("EXTRA_CA_CERT=", {"EXTRA_CA_CERT": ""}),
        ("  IRONCURTAIN_IMAGE_TAG=wt\r\n", {"IRONCURTAIN_IMAGE_TAG": "wt"}),
        # make's own variables are accepted and are no setting of the CLI
        ("VENV=.venv2\nPYTEST_ARGS=-x\nPYTHON=python3.12", {}),
    ],
)
def test_dotenv_lines_we_understand(text: str, expected: dict[str, str]) -> None:
    assert parse_dotenv(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("BASE_IMAGE", r"\.env:1: not a KEY=VALUE line"),
        ("# ok\nBASE_IMAGE = x:1", r"\.env:2: not a KEY=VALUE line"),
        ("1BASE=x", r"\.env:1: not a KEY=VALUE line"),
        ("BASE_IMAGE=x:1\nBASE_IMAGE=y:1", r"\.env:2: BASE_IMAGE is set twice"),
        ("BASE_IMAGES=x:1", r"\.env:1: unknown setting BASE_IMAGES"),
        ("base_image=x:1", r"\.env:1: unknown setting base_image"),
        ("ANTHROPIC_API_KEY=sk-ant-123", r"\.env:1: unknown setting ANTHROPIC_API_KEY.*key store"),
        ("EXTRA_CA_CERT=$HOME/ca.pem", r"\.env:1: .*\$"),
        ("EXTRA_CA_CERT=/a b", r"\.env:1: quote a value with spaces"),
        ("EXTRA_CA_CERT=`cat x`", r"\.env:1:"),
        ('EXTRA_CA_CERT="/a.pem', r"\.env:1: unbalanced quote"),
        ('EXTRA_CA_CERT="/a.pem" /b', r"\.env:1: unbalanced quote or text after"),
        ('EXTRA_CA_CERT="$HOME/a.pem"', r"\.env:1: escapes and \$-expansions"),
        ('EXTRA_CA_CERT="a\\"b"', r"\.env:1:"),
    ],
)
def test_dotenv_lines_we_do_not_understand_are_refused_naming_the_line(
    text: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_dotenv(text)


@given(st.text())
def test_dotenv_parser_either_parses_or_refuses(text: str) -> None:
    try:
        values = parse_dotenv(text)
    except SettingsError:
        return
    assert set(values) <= {
        "BASE_IMAGE", "EXTRA_CA_CERT", "IRONCURTAIN_IMAGE_TAG", "IRONCURTAIN_BUILTIN_BUDGETS",
        "IRONCURTAIN_RUNTIME",
    }  # fmt: skip


def test_user_config_names_its_settings_in_toml() -> None:
    text = 'base_image = "u:1"\nextra_ca_cert = "/c.pem"\nimage_tag = "mine"\nruntime = "runc"\n'
    assert parse_user_config(text) == {
        "BASE_IMAGE": "u:1",
        "EXTRA_CA_CERT": "/c.pem",
        "IRONCURTAIN_IMAGE_TAG": "mine",
        "IRONCURTAIN_RUNTIME": "runc",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('base_imag = "x"', r"unknown setting 'base_imag'"),
        ('BASE_IMAGE = "x"', r"unknown setting 'BASE_IMAGE'"),
        ('anthropic_api_key = "sk-ant-1"', r"unknown setting 'anthropic_api_key'.*key store"),
        ('[keys]\nanthropic = "sk-ant-1"', r"unknown setting 'keys'"),
        ("image_tag = 3", r"image_tag must be a string"),
        ("base_image = ", r"not valid TOML"),
    ],
)
def test_user_config_refuses_what_it_does_not_know(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_user_config(text, "config.toml")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}, Path("/x/ironcurtain/config.toml")),
        ({"HOME": "/h"}, Path("/h/.config/ironcurtain/config.toml")),
        ({"XDG_CONFIG_HOME": "", "HOME": "/h"}, Path("/h/.config/ironcurtain/config.toml")),
        ({}, None),
    ],
)
def test_user_config_path(environ: dict[str, str], expected: Path | None) -> None:
    assert user_config_path(environ) == expected


def test_load_reads_user_config_over_the_checkouts_dotenv(tmp_path: Path) -> None:
    (tmp_path / "cfg" / "ironcurtain").mkdir(parents=True)
    (tmp_path / "cfg" / "ironcurtain" / "config.toml").write_text('base_image = "u:1"\n')
    (tmp_path / ".env").write_text("BASE_IMAGE=d:1\nEXTRA_CA_CERT=/d.pem\n")
    settings = load({"XDG_CONFIG_HOME": str(tmp_path / "cfg")}, tmp_path)
    assert (settings.base_image, settings.extra_ca_cert) == ("u:1", Path("/d.pem"))
    assert dict(settings.sources)["EXTRA_CA_CERT"] == str(tmp_path / ".env")


def test_load_without_files_gives_the_defaults(tmp_path: Path) -> None:
    assert load({"HOME": str(tmp_path)}, tmp_path).as_env() == resolve({}).as_env()
    assert load({}, None).as_env() == resolve({}).as_env()


def test_load_names_the_file_of_a_bad_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BASE_IMAGE=x:1\nnonsense\n")
    with pytest.raises(SettingsError, match=rf"{tmp_path}/\.env:2: not a KEY=VALUE"):
        load({}, tmp_path)
