"""The wheel carries IronCurtain's home, so an installed copy builds the same images."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from operator import attrgetter
from pathlib import Path

import pytest

from ironcurtain import home
from ironcurtain.images.build import BuildSettings, context_files
from ironcurtain.images.catalog import discover

REPO = Path(__file__).resolve().parents[2]
by_path = attrgetter("path")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as a wheel installs it: built by pip, unpacked with its file modes."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("ironcurtain-*.whl")
    site = out / "site"
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            target = archive.extract(member, site)
            mode = member.external_attr >> 16
            if mode:
                Path(target).chmod(mode & 0o777)
    return site / "ironcurtain"


def test_the_wheel_holds_the_home_and_no_build_by_products(installed: Path) -> None:
    found = home.locate(installed)
    assert found == home.Home(installed / home.PACKAGED_HOME, checkout=False)
    for name in home.HOME_PATHS:
        assert (found.root / name).exists(), name
    stray = [p for p in found.root.rglob("*") if home.skipped(p.relative_to(found.root))]
    assert stray == []


def test_every_image_context_is_the_checkouts(installed: Path) -> None:
    # Same bytes, paths and executable bits: the same content hashes, so no rebuild.
    packaged = installed / home.PACKAGED_HOME
    mine, theirs = discover(REPO), discover(packaged)
    assert mine.keys() == theirs.keys()
    for name in mine:
        ours = context_files(mine[name], BuildSettings(repo_root=REPO))
        packaged_files = context_files(theirs[name], BuildSettings(repo_root=packaged))
        assert sorted(ours, key=by_path) == sorted(packaged_files, key=by_path), name
