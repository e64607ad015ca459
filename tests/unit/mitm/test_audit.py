"""The MITM's log through the project's audit module: the same keyed chain, bounds and verify as
the MCP door's, and what lets a request through is on disk before it is forwarded."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from ironcurtain.audit import AuditLog, read_key, verify_file, write_key
from ironcurtain.audit.bound import DEFAULT
from ironcurtain.audit.chain import GENESIS, Head
from ironcurtain.audit.writer import FileOps, head_path
from ironcurtain.mitm.audit import Audit, Entry

from .harness import connect, post, raw, read_reply, start, tunnel

KEY = bytes(range(32))


def test_the_mitm_log_is_keyed_and_a_rewritten_refusal_fails_verification(
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "audit_key_mitm"
    write_key(key_file, KEY)
    stack = start(tmp_path / "stack", audit_key=str(key_file))
    try:
        fake = b"x-api-key: " + stack.fakes["anthropic"].encode()
        reply = raw(stack, "api.anthropic.com", post("/v1/messages", fake))
        assert reply.status == 200  # control: the legitimate call reaches the vendor
        sock, refused = connect(stack.port, "evil.example:443")
        sock.close()
        assert refused.status >= 400
        stack.audit_until(lambda line: line.get("event") == "connect")
    finally:
        stack.close()
    log = stack.audit_path
    report = verify_file(log, read_key(key_file))
    assert report.ok, report.problem
    # Rewrite the refusal as an allow and recompute the chain without the key.
    lines, prev = [], GENESIS
    for raw_line in log.read_bytes().splitlines():
        body = json.loads(raw_line.replace(b'"refuse"', b'"allow"'))
        body["prev"] = prev
        line = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        lines.append(line + b"\n")
        prev = hashlib.sha256(line).hexdigest()
    log.write_bytes(b"".join(lines))
    head_path(log).write_bytes(Head(len(lines) - 1, prev).encode())
    assert not verify_file(log, KEY).ok


class Spy:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def ops(self) -> FileOps:
        def write(fd: int, data: bytes) -> int:
            self.calls.append("write")
            return os.write(fd, data)

        def sync(fd: int) -> None:
            self.calls.append("sync")
            os.fdatasync(fd)

        return FileOps(write=write, fdatasync=sync)


@pytest.mark.parametrize(
    ("event", "decision", "synced"),
    [
        ("request", "allow", True),  # forwarded next: on disk first
        ("request", "local", True),
        ("connect", "allow", True),
        ("request", "refuse", False),  # nothing happens: after the fact
        ("response", "done", False),
        ("response", "error", False),
    ],
)
def test_a_line_that_lets_something_through_is_synced_before_write_returns(
    tmp_path: Path, event: str, decision: str, synced: bool
) -> None:
    spy = Spy()
    audit = Audit(AuditLog(tmp_path / "m.jsonl", KEY, ops=spy.ops(), redacting=False))
    audit.write(Entry("s", event, decision, "rule", host="api.anthropic.com"))
    audit.close()
    assert spy.calls == (["write", "sync"] if synced else ["write"])


def test_a_refused_connect_with_a_32_kb_host_makes_a_bounded_line(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    audit = Audit.open(path, KEY)
    host = "h" * 32_768
    audit.write(Entry("s", "connect", "refuse", "host", host=host, reason=f"{host} not allowed"))
    audit.close()
    (line,) = path.read_bytes().splitlines()
    assert len(line) < 2 * DEFAULT.text + 512
    assert verify_file(path, KEY).ok


def test_token_counts_are_not_taken_for_secrets(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    audit = Audit.open(path, KEY)
    audit.write(Entry("s", "response", "done", "upstream", input_tokens=12, output_tokens=34))
    audit.close()
    (record,) = [json.loads(x) for x in path.read_bytes().splitlines()]
    assert (record["input_tokens"], record["output_tokens"]) == (12, 34)


def test_a_full_disk_forwards_nothing_and_loses_no_acknowledged_line(tmp_path: Path) -> None:
    import errno

    import h11

    key_file = tmp_path / "audit_key_mitm"
    write_key(key_file, KEY)
    stack = start(tmp_path / "stack", audit_key=str(key_file))
    try:
        fake = b"x-api-key: " + stack.fakes["anthropic"].encode()
        control = raw(stack, "api.anthropic.com", post("/v1/messages", fake))
        assert control.status == 200
        stack.audit_until(lambda line: line.get("event") == "response")
        seen = len(stack.vendor.seen)
        before = stack.audit_path.read_bytes()

        def full(fd: int, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        # The audit folder's file system fills up while the tunnel is open.
        with tunnel(stack, "api.anthropic.com") as sock:
            stack.proxy._audit._log._ops = FileOps(write=full)
            sock.sendall(post("/v1/messages", fake))
            with pytest.raises((AssertionError, OSError, h11.ProtocolError)):
                read_reply(sock, b"POST")  # the connection ends without an answer
    finally:
        stack.close()
    assert len(stack.vendor.seen) == seen  # nothing reached the vendor unaudited
    assert stack.audit_path.read_bytes() == before  # every acknowledged line, whole
    assert verify_file(stack.audit_path, KEY).ok


def test_the_allow_line_is_on_disk_before_the_vendor_sees_the_request(tmp_path: Path) -> None:
    stack = start(tmp_path / "stack")
    at_sync: list[tuple[int, bool]] = []  # (requests the vendor had seen, allow line written)
    log = stack.proxy._audit._log

    def sync(fd: int) -> None:
        os.fdatasync(fd)
        at_sync.append((len(stack.vendor.seen), b'"allow"' in stack.audit_path.read_bytes()))

    try:
        log._ops = FileOps(fdatasync=sync)
        fake = b"x-api-key: " + stack.fakes["anthropic"].encode()
        reply = raw(stack, "api.anthropic.com", post("/v1/messages", fake))
        assert reply.status == 200  # control: it was forwarded
        seen = len(stack.vendor.seen)
    finally:
        stack.close()
    assert (seen - 1, True) in at_sync  # synced while the vendor had not yet seen it


def _entry(n: int) -> Entry:
    return Entry("s", "request", "allow", "rule", host="api.anthropic.com", request_id=f"{n:x}")


@pytest.mark.parametrize("alone", [True, False])
def test_write_durably_returns_only_after_the_sync_off_the_loop_unless_alone(
    tmp_path: Path, alone: bool
) -> None:
    import asyncio
    import threading

    threads: list[bool] = []

    def sync(fd: int) -> None:
        threads.append(threading.current_thread() is threading.main_thread())
        os.fdatasync(fd)

    spy = Spy()
    audit = Audit(AuditLog(tmp_path / "m.jsonl", KEY, ops=FileOps(fdatasync=sync)))
    audit._log._ops = FileOps(write=spy.ops().write, fdatasync=sync)
    asyncio.run(audit.write_durably(_entry(1), alone=alone))
    asyncio.run(audit.write_durably(Entry("s", "response", "done", "upstream"), alone=alone))
    audit.close()
    assert threads == [alone]  # one sync, for the allow line only; on the loop only when alone
    assert spy.calls == ["write", "write"]


def test_group_commit_under_concurrency_loses_no_line_and_keeps_the_chain(
    tmp_path: Path,
) -> None:
    import asyncio

    path = tmp_path / "m.jsonl"
    covered: list[int] = []  # the file size each sync made durable

    def sync(fd: int) -> None:
        size = os.fstat(fd).st_size
        os.fdatasync(fd)
        covered.append(size)

    audit = Audit(AuditLog(path, KEY, ops=FileOps(fdatasync=sync), redacting=False))
    late: list[int] = []

    async def one(n: int) -> None:
        await audit.write_durably(_entry(n), alone=False)
        end = path.read_bytes().index(f'"request_id":"{n:x}"'.encode())
        if not covered or max(covered) < end:
            late.append(n)  # returned before a sync covered its line

    async def go() -> None:
        await asyncio.gather(*(one(n) for n in range(60)))

    asyncio.run(go())
    audit.close()
    assert late == []
    report = verify_file(path, KEY)
    assert report.ok, report.problem
    assert report.lines == 60
    assert 1 <= len(covered) < 60  # concurrent lines shared syncs


def test_a_failed_sync_off_the_loop_refuses_every_waiter_and_breaks_the_log(
    tmp_path: Path,
) -> None:
    import asyncio
    import errno

    from ironcurtain.audit import AuditError

    def sync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    audit = Audit(AuditLog(tmp_path / "m.jsonl", KEY, ops=FileOps(fdatasync=sync)))
    outcomes: list[str] = []

    async def one(n: int) -> None:
        try:
            await audit.write_durably(_entry(n), alone=False)
            outcomes.append("returned")
        except AuditError as exc:
            outcomes.append(exc.reason)

    async def go() -> None:
        await asyncio.gather(*(one(n) for n in range(8)))

    asyncio.run(go())
    assert outcomes == ["No space left on device"] * 8  # nobody goes on to forward
    with pytest.raises(AuditError, match="broken"):
        audit.write(_entry(99))
    audit.close()


def test_a_failed_sync_of_a_lone_request_refuses_it_and_breaks_the_log(tmp_path: Path) -> None:
    """The lone request's sync (on the loop, no checkpoint, no thread) fails as the shared one
    does: the request is refused and every later line too."""
    import asyncio
    import errno

    from ironcurtain.audit import AuditError

    def sync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    audit = Audit(AuditLog(tmp_path / "m.jsonl", KEY, ops=FileOps(fdatasync=sync)))
    with pytest.raises(AuditError) as refused:
        asyncio.run(audit.write_durably(_entry(1), alone=True))
    assert refused.value.reason == "Input/output error"
    with pytest.raises(AuditError, match="broken"):
        asyncio.run(audit.write_durably(_entry(2), alone=True))
    audit.close()


def test_a_lone_request_returns_only_once_a_sync_covered_its_line(tmp_path: Path) -> None:
    import asyncio

    path = tmp_path / "m.jsonl"
    covered: list[int] = []

    def sync(fd: int) -> None:
        os.fdatasync(fd)
        covered.append(os.fstat(fd).st_size)

    audit = Audit(AuditLog(path, KEY, ops=FileOps(fdatasync=sync), redacting=False))
    for n in range(3):
        asyncio.run(audit.write_durably(_entry(n), alone=True))
        assert covered  # its line, synced, before return
        assert covered[-1] == path.stat().st_size
    audit.close()
    assert len(covered) == 3
    assert verify_file(path, KEY).ok
