"""The session's copy of the MITM CA is private whatever the process's umask is at that moment
(another thread of the same process may have changed it: benchmarks and tests start sessions
from threads)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ironcurtain.mitm import ca
from ironcurtain.session.run import copy_ca


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "ca"
    folder.mkdir()
    (folder / ca.KEY_FILE).write_text("key")
    (folder / ca.CERT_FILE).write_text("cert")
    return folder


@pytest.mark.usefixtures("permissive_umask")
def test_the_key_copy_is_private_even_under_a_permissive_umask(
    ca_dir: Path, tmp_path: Path
) -> None:
    copy_ca(ca_dir, tmp_path / "copy")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "copy").iterdir()}
    assert modes == {ca.KEY_FILE: 0o600, ca.CERT_FILE: 0o644}
    assert stat.S_IMODE((tmp_path / "copy").stat().st_mode) == 0o700
    assert (tmp_path / "copy" / ca.KEY_FILE).read_text() == "key"


def test_an_existing_copy_is_never_overwritten(ca_dir: Path, tmp_path: Path) -> None:
    copy_ca(ca_dir, tmp_path / "copy")
    with pytest.raises(FileExistsError):
        copy_ca(ca_dir, tmp_path / "copy")
