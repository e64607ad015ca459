"""Files made once: whole or absent, never overwritten, and one maker among racing processes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ironcurtain import once

from .racers import race


def test_a_published_file_has_its_mode_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        assert once.publish(tmp_path / "secret", b"s3cret", 0o600)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    assert (tmp_path / "secret").read_bytes() == b"s3cret"


def test_publishing_never_overwrites_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    assert once.publish(tmp_path / "file", b"first")
    assert not once.publish(tmp_path / "file", b"second")
    assert (tmp_path / "file").read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_of_racing_publishers_exactly_one_wins_and_every_reader_sees_its_whole_file(
    tmp_path: Path,
) -> None:
    results = race(
        "from pathlib import Path\nfrom ironcurtain import once\nimport os",
        f"path = Path({str(tmp_path / 'file')!r})\n"
        "mine = os.urandom(1 << 20).hex().encode()\n"
        "won = once.publish(path, mine)\n"
        "result = [won, path.read_bytes() == mine, len(path.read_bytes())]",
    )
    assert sorted(r[0] for r in results) == [False] * 7 + [True]  # type: ignore[index]
    assert all(r[1] == r[0] for r in results)  # type: ignore[index]  # only the winner's content
    assert {r[2] for r in results} == {2 << 20}  # type: ignore[index]  # whole, for everyone
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_the_lock_lets_one_holder_in_at_a_time(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    results = race(
        "import hashlib, os\nfrom pathlib import Path\nfrom ironcurtain import once",
        f"log = Path({str(tmp_path / 'log')!r})\n"
        f"with once.held(Path({str(lock)!r})):\n"
        "    with log.open('a') as out:\n"
        "        out.write('in\\n'); out.flush()\n"
        "    hashlib.sha256(os.urandom(1 << 22)).hexdigest()  # a while inside\n"
        "    with log.open('a') as out:\n"
        "        out.write('out\\n')\n"
        "result = True",
    )
    assert results == [True] * 8
    lines = (tmp_path / "log").read_text().split()
    assert lines == ["in", "out"] * 8  # never two inside at once
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
