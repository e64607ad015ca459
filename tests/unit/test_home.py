"""Where IronCurtain's files are found: from the package's place, never the current directory."""

from __future__ import annotations

from pathlib import Path, PurePath

import pytest

from ironcurtain import home


def _home_at(root: Path) -> None:
    (root / "images").mkdir(parents=True)
    (root / "compose.yaml").write_text("services: {}\n")
    (root / "pyproject.toml").write_text("")


def test_this_checkout_is_its_own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # wherever the command starts
    found = home.locate()
    assert found.checkout
    assert (found.root / "services" / "ironcurtain" / "home.py").is_file()


def test_an_installed_package_uses_its_packaged_home(tmp_path: Path) -> None:
    package = tmp_path / "site-packages" / "ironcurtain"
    _home_at(package / home.PACKAGED_HOME)
    assert home.locate(package) == home.Home(package / home.PACKAGED_HOME, checkout=False)


def test_a_package_with_no_home_says_how_to_get_one(tmp_path: Path) -> None:
    package = tmp_path / "site-packages" / "ironcurtain"
    package.mkdir(parents=True)
    with pytest.raises(home.HomeMissing, match="reinstall"):
        home.locate(package)


def test_the_current_directory_is_never_the_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A repository that looks like a home (say, a fork) does not replace ours.
    _home_at(tmp_path / "fork")
    monkeypatch.chdir(tmp_path / "fork")
    assert home.locate().root != (tmp_path / "fork").resolve()


@pytest.mark.parametrize(
    ("path", "skip"),
    [
        ("services/ironcurtain/x.py", False),
        ("images/agent-base/Dockerfile", False),
        ("services/ironcurtain/__pycache__/x.cpython-311.pyc", True),
        ("services/ironcurtain.egg-info/PKG-INFO", True),
        ("services/ironcurtain/_home/compose.yaml", True),
        ("a/.pytest_cache/v", True),
    ],
)
def test_build_by_products_are_skipped(path: str, skip: bool) -> None:
    assert home.skipped(PurePath(path)) is skip
