"""The writer under hostile sizes and a full disk: every line bounded, tail() from the end,
ENOSPC refused without a partial line or the loss of a line already acknowledged."""

from __future__ import annotations

import errno
import json
import tracemalloc
from pathlib import Path

import anyio
import pytest

from ironcurtain.audit import AuditError, AuditLog, bounded, verify_file
from ironcurtain.audit.bound import DEFAULT
from ironcurtain.audit.writer import TAIL_BYTES, TAIL_LINE_CHARS, FileOps

KEY = bytes(range(32))


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


@pytest.mark.parametrize(
    "arguments",
    [
        {"n" * 1_900_000: "x"},  # the 22 MB line of the finding: a huge argument *name*
        {"path": "p" * 10_000_000},
        {f"k{i}": "v" * 2000 for i in range(500)},  # many values, each under the cut
        {"a": [["x" * 2000] * 60] * 60},
        {"deep": json.loads("[" * 900 + "]" * 900)},
    ],
    ids=["long-name", "long-value", "many-keys", "wide-lists", "deep"],
)
def test_every_line_is_bounded_whatever_the_arguments(tmp_path: Path, arguments: dict) -> None:
    path = tmp_path / "a.jsonl"
    audit = AuditLog(path, KEY)
    audit.append({"event": "decision", "arguments": arguments})
    audit.append({"event": "decision", "arguments": {"ok": 1}})  # control: a small line
    audit.close()
    raw = path.read_bytes().splitlines()
    assert all(len(line) <= DEFAULT.line for line in raw)
    assert lines_of(path)[1]["arguments"] == {"ok": 1}
    assert verify_file(path, KEY).ok


def test_a_long_name_is_cut_with_its_length_and_hash_and_cutting_again_changes_nothing() -> None:
    once = bounded({"n" * 1_900_000: 1})
    (name,) = once
    assert len(name) <= DEFAULT.name
    assert "1900000 chars, sha256" in name
    assert bounded(once) == once


def test_nan_and_lone_surrogates_become_valid_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    audit = AuditLog(path, KEY)
    audit.append({"event": "decision", "arguments": {"x": float("nan"), "s": "\ud800"}})
    audit.close()
    text = path.read_text()
    assert "NaN" not in text.replace("'nan'", "")
    (record,) = lines_of(path)
    assert record["arguments"]["x"] == "nan"
    assert verify_file(path, KEY).ok


def test_tail_reads_only_the_end_of_a_300_mb_log(tmp_path: Path) -> None:
    small = tmp_path / "small.jsonl"
    audit = AuditLog(small, KEY)
    for n in range(30):
        audit.append({"event": "decision", "n": n, "pad": "y" * 1500})
    audit.close()
    path = tmp_path / "a.jsonl"
    with path.open("wb") as f:  # 300 MB before those lines, sparse: cheap to make
        f.truncate(300 * 1024 * 1024)
        f.seek(0, 2)
        f.write(b"\n" + small.read_bytes())
    audit = AuditLog(path, KEY)  # resumes from the last line, read from the end
    tracemalloc.start()
    try:
        recent = audit.tail(20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    audit.close()
    assert peak < 1024 * 1024
    assert sum(len(line) for line in recent) <= TAIL_BYTES
    assert all(len(line) <= TAIL_LINE_CHARS + 3 for line in recent)
    assert '"n":29' in recent[-1]


def test_tail_of_a_short_log_gives_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    audit = AuditLog(path, KEY)
    for n in range(3):
        audit.append({"n": n})
    assert [json.loads(line)["n"] for line in audit.tail(20)] == [0, 1, 2]
    audit.close()


class FullDisk:
    """A disk that fills up: after `room` more bytes every write fails with ENOSPC, having
    written what fitted (a short write first, as a real file system does)."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.full_syncs = False

    def write(self, fd: int, data: bytes) -> int:
        import os

        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        part = data[: self.room]
        written = os.write(fd, part)
        self.room -= written
        return written

    def fdatasync(self, fd: int) -> None:
        import os

        if self.full_syncs:
            raise OSError(errno.ENOSPC, "No space left on device")
        os.fdatasync(fd)

    def ops(self) -> FileOps:
        import os

        return FileOps(write=self.write, fdatasync=self.fdatasync, ftruncate=os.ftruncate)


def test_a_full_disk_refuses_the_append_saying_so_and_leaves_no_partial_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.jsonl"
    disk = FullDisk(room=10_000)
    audit = AuditLog(path, KEY, ops=disk.ops())
    acknowledged, reason = 0, ""
    for n in range(1000):
        try:
            audit.append({"event": "decision", "n": n, "pad": "z" * 200})
        except AuditError as exc:
            reason = exc.reason
            break
        acknowledged += 1
    assert reason == "No space left on device"
    assert 0 < acknowledged < 1000
    # Every later call is refused too while the disk is full, and says why.
    for _ in range(3):
        with pytest.raises(AuditError, match="No space left"):
            audit.append({"event": "decision", "n": "later"})
    assert path.read_bytes().endswith(b"\n")
    assert [r["n"] for r in lines_of(path)] == list(range(acknowledged))
    assert verify_file(path, KEY).ok
    # Space freed: the chain goes on where it stopped.
    disk.room = 10**9
    audit.append({"event": "decision", "n": "after"})
    audit.close()
    report = verify_file(path, KEY)
    assert report.ok, report.problem
    assert report.lines == acknowledged + 1


def test_a_full_disk_fails_every_waiting_durable_append_and_keeps_the_acknowledged_lines(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.jsonl"
    disk = FullDisk(room=10**9)
    audit = AuditLog(path, KEY, ops=disk.ops())
    for n in range(5):
        audit.append({"n": n})
    disk.full_syncs = True  # ext4's delayed allocation: the space runs out at the sync
    outcomes: list[str] = []

    async def one(n: int) -> None:
        try:
            await audit.append_durably({"n": 100 + n})
            outcomes.append("returned")
        except AuditError as exc:
            outcomes.append(exc.reason)

    async def go() -> None:
        async with anyio.create_task_group() as tg:
            for n in range(10):
                tg.start_soon(one, n)

    anyio.run(go)
    assert outcomes == ["No space left on device"] * 10
    disk.full_syncs = False
    with pytest.raises(AuditError, match="broken"):  # a failed sync is never retried
        audit.append({"n": "later"})
    audit.close()
    assert [r["n"] for r in lines_of(path)][:5] == list(range(5))


def test_a_short_write_is_completed_not_torn(tmp_path: Path) -> None:
    import os

    def dribble(fd: int, data: bytes) -> int:
        return os.write(fd, data[:7])

    path = tmp_path / "a.jsonl"
    audit = AuditLog(path, KEY, ops=FileOps(write=dribble))
    for n in range(3):
        audit.append({"n": n})
    audit.close()
    assert verify_file(path, KEY).ok


def test_a_log_near_its_size_limit_admits_no_new_call_but_keeps_the_lines_under_way(
    tmp_path: Path,
) -> None:
    """A hostile caller must not fill the host's disk: past the limit (less the reserve) new
    calls are refused, the lines of calls already under way still fit, and no append takes
    the file past the limit."""
    path = tmp_path / "a.jsonl"
    audit = AuditLog(path, KEY, max_bytes=64_000, reserve_bytes=16_000)
    admitted, refusal = 0, ""
    while admitted < 100:
        try:
            audit.admit()
        except AuditError as exc:
            refusal = exc.reason
            break
        audit.append({"event": "decision", "arguments": {"x": "é" * 2000}})
        admitted += 1
    assert "size limit of 64000 bytes" in refusal
    assert admitted > 0  # control: a log with room admits calls
    assert path.stat().st_size + 16_000 >= 64_000
    audit.append({"event": "outcome", "ok": True})  # a call under way still gets its line
    big = {"event": "outcome", "arguments": {"x": "é" * 2000}}
    appended = 0
    for _ in range(100):  # only the reserve is left, and nothing goes past it
        try:
            audit.append(big)
        except AuditError as exc:
            assert "is full" in str(exc)  # noqa: PT017 - the loop ends at the first refusal
            break
        appended += 1
    assert appended < 100
    assert path.stat().st_size <= 64_000
    audit.close()
    assert verify_file(path, KEY).ok  # refused lines left nothing behind


def test_a_reserve_as_large_as_the_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reserve"):
        AuditLog(tmp_path / "a.jsonl", KEY, max_bytes=1000, reserve_bytes=1000)
