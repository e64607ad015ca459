"""The audit log: every line chained to the previous one; edits and truncation are detected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ironcurtain.audit import AuditLog, verify_file, write_key
from ironcurtain.audit.chain import GENESIS
from ironcurtain.audit.writer import head_path
from ironcurtain.cli import main

KEY = bytes(range(32))


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "audit" / "session.jsonl"
    audit = AuditLog(path, KEY, clock=lambda: 1.0)
    for i in range(5):
        audit.append({"event": "decision", "n": i})
    audit.close()
    return path


def test_an_untouched_log_verifies(log: Path) -> None:
    report = verify_file(log, KEY)
    assert report.ok, report.problem
    assert report.lines == 5


def test_each_line_carries_the_hash_of_the_previous_one(log: Path) -> None:
    lines = log.read_bytes().splitlines()
    first = json.loads(lines[0])
    assert first["prev"] == GENESIS
    assert first["seq"] == 0
    assert all(json.loads(line)["prev"] != GENESIS for line in lines[1:])


def test_the_log_and_its_head_are_private_to_the_owner(log: Path) -> None:
    assert log.stat().st_mode & 0o077 == 0
    assert head_path(log).stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda ls: ls.__setitem__(2, ls[2].replace(b'"n":2', b'"n":7')), "line 4"),
        (lambda ls: ls.__setitem__(4, ls[4].replace(b'"n":4', b'"n":9')), "line 5"),
        (lambda ls: ls.__delitem__(1), "line 2"),
        (lambda ls: ls.insert(3, ls[3]), "line 5"),
        (lambda ls: ls.__setitem__(0, ls[0].replace(b'"n":0', b'"n": 0')), "line 1"),
        (lambda ls: ls.__delitem__(4), "truncated"),
        (lambda ls: ls.clear(), "truncated"),
    ],
    ids=["edit-middle", "edit-last", "remove", "duplicate", "reformat", "cut-end", "empty"],
)
def test_an_edited_or_truncated_log_fails_verification(log: Path, edit, problem: str) -> None:
    lines = log.read_bytes().splitlines(keepends=True)
    edit(lines)
    log.write_bytes(b"".join(lines))
    report = verify_file(log, KEY)
    assert not report.ok
    assert problem in report.problem


def test_a_line_cut_in_half_is_detected(log: Path) -> None:
    data = log.read_bytes()
    log.write_bytes(data[:-10])
    report = verify_file(log, KEY)
    assert not report.ok
    assert "incomplete" in report.problem


def test_a_missing_head_is_reported(log: Path) -> None:
    head_path(log).unlink()
    assert not verify_file(log, KEY).ok


def test_a_reopened_log_continues_the_chain(log: Path) -> None:
    audit = AuditLog(log, KEY)
    audit.append({"event": "later"})
    audit.close()
    report = verify_file(log, KEY)
    assert report.ok, report.problem
    assert report.lines == 6


def test_secrets_in_records_are_redacted_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    audit = AuditLog(path, KEY)
    audit.append(
        {
            "arguments": {
                "content": "key sk-ant-api03-abcdefghijklmnop and ghp_abcdefghijklmnopqrstuvwx12",
                "password": "hunter2",
                "url": "https://user:pa55word@example.com/x?token=abc123&q=1",
            }
        }
    )
    audit.close()
    text = path.read_text()
    for secret in (
        "sk-ant-api03-abcdefghijklmnop",
        "ghp_abcdefghijklmnopqrstuvwx12",
        "hunter2",
        "pa55word",
        "abc123",
    ):
        assert secret not in text
    assert "q=1" in text  # harmless parts stay readable
    assert verify_file(path, KEY).ok


def test_the_cli_exits_non_zero_on_a_tampered_log(
    log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = log.parent / "k.key"
    write_key(key, KEY)
    assert main(["audit", "verify", str(log), "--key", str(key)]) == 0
    lines = log.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"n":1', b'"n":5')
    log.write_bytes(b"".join(lines))
    assert main(["audit", "verify", str(log), "--key", str(key)]) == 1
    assert "TAMPERED" in capsys.readouterr().out


def test_concurrent_durable_appends_share_fsyncs_and_keep_the_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import anyio

    syncs: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (syncs.append(fd), real(fd))[1])
    path = tmp_path / "a.jsonl"
    audit = AuditLog(path, KEY)

    async def go() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(audit.append_durably, {"n": i})

    anyio.run(go)
    audit.close()
    assert 1 <= len(syncs) < 50  # batched: one fsync covered many lines
    report = verify_file(path, KEY)
    assert report.ok, report.problem
    assert report.lines == 50


@pytest.mark.parametrize("inline", [False, True])
def test_a_durable_append_returns_only_after_a_sync_that_covers_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inline: bool
) -> None:
    import os

    import anyio

    synced_up_to = [0]  # bytes of the log on disk, as far as fdatasync has promised
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        size = os.fstat(fd).st_size  # what this sync covers: everything written before it
        real(fd)
        synced_up_to[0] = max(synced_up_to[0], size)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    path = tmp_path / "a.jsonl"
    audit = AuditLog(path, KEY)
    uncovered: list[int] = []

    async def one(i: int) -> None:
        await audit.append_durably({"n": i}, inline=inline)
        data = path.read_bytes()
        end = data.index(b'"n":%d,' % i)
        end = data.index(b"\n", end) + 1
        if end > synced_up_to[0]:
            uncovered.append(i)

    async def go() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(one, i)

    anyio.run(go)
    audit.close()
    assert uncovered == []
    assert verify_file(path, KEY).ok


def test_a_failed_sync_fails_every_append_that_waited_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import anyio

    from ironcurtain.audit import AuditError

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    audit = AuditLog(tmp_path / "a.jsonl", KEY)
    outcomes: list[str] = []

    async def one(i: int) -> None:
        try:
            await audit.append_durably({"n": i})
            outcomes.append("returned")
        except AuditError:
            outcomes.append("refused")

    async def go() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(one, i)

    anyio.run(go)
    audit.close()
    assert outcomes == ["refused"] * 10


def test_overlapping_appends_sync_off_the_event_loop_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import threading

    import anyio

    threads: set[int] = set()
    real = os.fdatasync
    monkeypatch.setattr(
        os, "fdatasync", lambda fd: (threads.add(threading.get_ident()), real(fd))[1]
    )
    audit = AuditLog(tmp_path / "a.jsonl", KEY)

    async def go() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(5):
                tg.start_soon(audit.append_durably, {"n": i})
        await audit.append_durably({"n": "alone"}, inline=True)

    anyio.run(go)
    audit.close()
    assert threading.get_ident() in threads  # the inline one
    assert len(threads) >= 2  # and the others in a worker thread
