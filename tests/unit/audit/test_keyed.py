"""The keyed chain and the host's checkpoints: a log rewritten by whoever can write its folder
(and so its head) fails `ironcurtain audit verify`; an untouched one passes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from ironcurtain.audit import Anchor, AuditLog, verify_file, write_key
from ironcurtain.audit.anchor import checkpoints_path, key_path, read_head
from ironcurtain.audit.chain import GENESIS, Head, mac
from ironcurtain.audit.writer import head_path
from ironcurtain.cli import main

KEY = bytes(range(32))


def decisions(path: Path, effects: list[str], anchor: Anchor | None = None) -> None:
    audit = AuditLog(path, KEY, clock=lambda: 1.0)
    for n, effect in enumerate(effects):
        audit.append({"event": "decision", "n": n, "effect": effect, "rule": "r"})
        if anchor is not None:
            anchor.collect()
    audit.close()


def rechain(lines: list[bytes], sign) -> list[bytes]:
    """What an attacker who can write the folder does after an edit: a fresh, consistent chain
    and head, MACs computed by `sign` (without the key, or with one)."""
    out, prev = [], GENESIS
    for raw in lines:
        body = json.loads(raw)
        body["prev"] = prev
        line = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        out.append(line + b"\n")
        prev = sign(line)
    return out


def forge(log: Path, lines: list[bytes], sign) -> None:
    chained = rechain(lines, sign)
    log.write_bytes(b"".join(chained))
    head_path(log).write_bytes(Head(len(chained) - 1, sign(chained[-1][:-1])).encode())


def allow_instead_of_deny(lines: list[bytes]) -> list[bytes]:
    return [raw.replace(b'"effect":"deny"', b'"effect":"allow"') for raw in lines]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "audit" / "mcp.jsonl"
    decisions(path, ["allow", "deny", "allow", "deny"])
    return path


def test_an_untouched_keyed_log_verifies(log: Path) -> None:
    report = verify_file(log, KEY)
    assert report.ok, report.problem
    assert report.lines == 4


@pytest.mark.parametrize(
    "sign",
    [
        lambda line: hashlib.sha256(line).hexdigest(),  # the old, keyless chain
        lambda line: mac(b"\0" * 32, line),  # a guessed key
        lambda line: mac(os.urandom(32), line),  # another session's key
    ],
    ids=["sha256", "zero-key", "other-key"],
)
def test_a_deny_rewritten_as_allow_with_the_chain_recomputed_without_the_key_fails(
    log: Path, sign
) -> None:
    lines = allow_instead_of_deny(log.read_bytes().splitlines(keepends=True))
    forge(log, lines, sign)
    assert b'"effect":"deny"' not in log.read_bytes()
    report = verify_file(log, KEY)
    assert not report.ok
    assert "line 2" in report.problem  # the first line whose prev needs the key


def test_the_chain_recomputed_with_the_key_is_caught_by_the_hosts_checkpoints(
    tmp_path: Path,
) -> None:
    """Even the key's holder (a compromised proxy) cannot rewrite what the host checkpointed."""
    log = tmp_path / "audit" / "mcp.jsonl"
    marks = tmp_path / "anchor" / "mcp.checkpoints"
    marks.parent.mkdir()
    decisions(log, ["allow", "deny", "allow"], Anchor(log, marks))
    assert verify_file(log, KEY, marks).ok  # control
    lines = allow_instead_of_deny(log.read_bytes().splitlines(keepends=True))
    forge(log, lines, lambda line: mac(KEY, line))
    assert verify_file(log, KEY).ok  # the head beside the log alone is fooled
    report = verify_file(log, KEY, marks)
    assert not report.ok
    assert "checkpoint" in report.problem


@pytest.mark.parametrize("keep", [0, 1, 3])
def test_lines_cut_off_the_end_with_a_forged_head_are_caught_by_the_checkpoints(
    tmp_path: Path, keep: int
) -> None:
    log = tmp_path / "audit" / "mcp.jsonl"
    marks = tmp_path / "anchor" / "mcp.checkpoints"
    marks.parent.mkdir()
    decisions(log, ["allow", "deny", "allow", "deny", "allow"], Anchor(log, marks))
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:keep]))
    # The MAC of the new last line is in the next line's prev: no key needed to forge the head.
    forged = Head(keep - 1, json.loads(lines[keep])["prev"]) if keep else None
    head_path(log).write_bytes(forged.encode() if forged else b"")
    assert verify_file(log, KEY).ok  # fooled without the checkpoints
    report = verify_file(log, KEY, marks)
    assert not report.ok
    assert "truncated" in report.problem


def test_a_removed_checkpoints_file_fails_verification(tmp_path: Path) -> None:
    log = tmp_path / "audit" / "mcp.jsonl"
    decisions(log, ["allow"])
    report = verify_file(log, KEY, tmp_path / "anchor" / "mcp.checkpoints")
    assert not report.ok
    assert "no checkpoints" in report.problem


def test_the_anchor_writes_a_checkpoint_only_when_the_head_moved(tmp_path: Path) -> None:
    log = tmp_path / "mcp.jsonl"
    marks = tmp_path / "mcp.checkpoints"
    audit = AuditLog(log, KEY)
    anchor = Anchor(log, marks)
    assert anchor.collect() is None
    assert marks.read_bytes() == b""  # created empty: its absence later means removed
    audit.append({"event": "a"})
    assert anchor.collect() == read_head(log)
    assert anchor.collect() is None
    audit.append({"event": "b"})
    audit.append({"event": "c"})
    assert anchor.collect() == Head(2, read_head(log).mac)
    audit.close()
    assert len(marks.read_bytes().splitlines()) == 2
    assert marks.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("kind", ["symlink", "oversize", "garbage"])
def test_the_anchor_takes_nothing_but_a_head_from_the_containers_folder(
    tmp_path: Path, kind: str
) -> None:
    log = tmp_path / "mcp.jsonl"
    target = tmp_path / "host-secret"
    target.write_bytes(Head(7, "a" * 64).encode())
    if kind == "symlink":
        os.symlink(target, head_path(log))
    elif kind == "oversize":
        head_path(log).write_bytes(Head(7, "a" * 64).encode() * 1000)
    else:
        head_path(log).write_bytes(b"7 not-a-mac\n")
    marks = tmp_path / "mcp.checkpoints"
    assert Anchor(log, marks).collect() is None
    assert marks.read_bytes() == b""


def session_log(tmp_path: Path) -> Path:
    """A session's layout: <root>/audit/mcp/mcp.jsonl, <root>/anchor/mcp.{key,checkpoints}."""
    log = tmp_path / "audit" / "mcp" / "mcp.jsonl"
    anchor = tmp_path / "anchor"
    anchor.mkdir(mode=0o700, parents=True)
    write_key(key_path(anchor, log), KEY)
    decisions(log, ["allow", "deny"], Anchor(log, checkpoints_path(anchor, log)))
    return log


def test_the_cli_finds_the_sessions_key_and_checkpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = session_log(tmp_path)
    assert main(["audit", "verify", str(log)]) == 0
    assert "OK, 2 lines" in capsys.readouterr().out
    lines = allow_instead_of_deny(log.read_bytes().splitlines(keepends=True))
    forge(log, lines, lambda line: hashlib.sha256(line).hexdigest())
    assert main(["audit", "verify", str(log)]) == 1
    assert "TAMPERED" in capsys.readouterr().out


def test_the_cli_cannot_check_without_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "a.jsonl"
    decisions(log, ["allow"])
    assert main(["audit", "verify", str(log)]) == 2
    assert "no key" in capsys.readouterr().out
    bad = tmp_path / "bad.key"
    bad.write_text("not hex\n")
    assert main(["audit", "verify", str(log), "--key", str(bad)]) == 2


def test_a_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    write_key(path, KEY)
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        write_key(path, KEY)


def plant_anchor(folder: Path, log: Path, key: bytes) -> None:
    """What whoever writes the log's folder does after recomputing the chain under `key`."""
    folder.mkdir(mode=0o700, parents=True)
    write_key(key_path(folder, log), key)
    checkpoints_path(folder, log).write_bytes(b"")


def rewritten_under_own_key(log: Path, key: bytes) -> None:
    lines = allow_instead_of_deny(log.read_bytes().splitlines(keepends=True))
    forge(log, lines, lambda line: mac(key, line))


@pytest.mark.parametrize(
    "plant", ["audit/mcp/anchor", "audit/anchor"], ids=["beside-the-log", "under-audit"]
)
def test_an_anchor_planted_in_the_audit_tree_is_never_the_one_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], plant: str
) -> None:
    log = session_log(tmp_path)
    own = bytes(range(1, 33))
    rewritten_under_own_key(log, own)
    plant_anchor(tmp_path / plant, log, own)
    assert main(["audit", "verify", str(log)]) == 1
    assert "TAMPERED" in capsys.readouterr().out


def test_a_link_to_the_log_does_not_choose_the_anchor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The folder's writer leaves a link where the log was, to a copy in a layout of its own."""
    log = session_log(tmp_path / "session")
    own = bytes(range(1, 33))
    fake = tmp_path / "session" / "audit" / "mcp" / "x" / "audit" / "y" / "mcp.jsonl"
    fake.parent.mkdir(parents=True)
    fake.write_bytes(log.read_bytes())
    rewritten_under_own_key(fake, own)
    plant_anchor(fake.parents[2] / "anchor", fake, own)
    log.unlink()
    log.symlink_to(fake)
    assert main(["audit", "verify", str(log)]) == 1
    assert "a link, not the log" in capsys.readouterr().out


def test_an_anchor_that_is_a_link_or_open_to_others_cannot_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = session_log(tmp_path / "session")
    anchor = tmp_path / "session" / "anchor"
    anchor.chmod(0o755)
    assert main(["audit", "verify", str(log)]) == 2
    assert "not your private folder" in capsys.readouterr().out
    anchor.chmod(0o700)
    anchor.rename(tmp_path / "elsewhere")
    anchor.symlink_to(tmp_path / "elsewhere")
    assert main(["audit", "verify", str(log)]) == 2
    assert "not a folder" in capsys.readouterr().out
    anchor.unlink()
    (tmp_path / "elsewhere").rename(anchor)  # control: the real anchor checks the log
    assert main(["audit", "verify", str(log)]) == 0


@pytest.mark.parametrize("kind", ["fifo", "link-to-zero", "huge"])
def test_a_head_that_is_no_small_file_fails_at_once(log: Path, kind: str) -> None:
    head = head_path(log)
    head.unlink()
    if kind == "fifo":
        os.mkfifo(head)  # reading it would block forever
    elif kind == "link-to-zero":
        head.symlink_to("/dev/zero")  # reading it would never end
    else:
        head.write_bytes(b"0 " + b"f" * 10_000 + b"\n")
    report = verify_file(log, KEY)
    assert not report.ok
    assert "malformed head" in report.problem
