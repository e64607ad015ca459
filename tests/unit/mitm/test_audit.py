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
