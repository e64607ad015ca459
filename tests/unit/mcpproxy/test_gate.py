"""The gate in-process with the real backends: escalation outcomes, a backend dying mid-call."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest

from ironcurtain.audit import read_key, verify_file, write_key
from ironcurtain.escalation.types import EscalationOutcome, EscalationRequest, Verdict
from ironcurtain.mcpproxy.gate import Gate
from ironcurtain.mcpproxy.service import ProxySettings, StartupError, running_gate


class FakeEscalator:
    """Answers every escalation with a fixed verdict and remembers what it was asked."""

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.requests: list[EscalationRequest] = []

    async def escalate(self, request: EscalationRequest, timeout_s: float) -> EscalationOutcome:
        self.requests.append(request)
        return EscalationOutcome(self.verdict, f"{self.verdict.value} by test", "esc-1", "tester")


class BrokenEscalator:
    async def escalate(self, request: EscalationRequest, timeout_s: float) -> EscalationOutcome:
        raise RuntimeError("redis exploded")


def key_file(layout: dict[str, Path]) -> Path:
    """The session's audit key, as `ironcurtain run` would hand it over (outside the audit
    folder, the workspace and the state folder)."""
    path = layout["audit"].parent / "audit.key"
    if not path.exists():
        write_key(path, bytes(range(32)))
    return path


def settings(layout: dict[str, Path]) -> ProxySettings:
    return ProxySettings(
        policy_dir=layout["policy"],
        workspace=layout["workspace"],
        audit_file=layout["audit"] / "session.jsonl",
        state_dir=layout["state"],
        audit_key_file=key_file(layout),
    )


def with_gate(
    layout: dict[str, Path], escalator: Any, body: Callable[[Gate], Awaitable[Any]]
) -> Any:
    async def go() -> Any:
        with anyio.fail_after(60):
            async with running_gate(settings(layout), escalator) as gate:
                return await body(gate)

    return anyio.run(go)


def text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def move(layout: dict[str, Path]) -> tuple[str, dict[str, str]]:
    ws = layout["workspace"]
    (ws / "old.txt").write_text("content")
    return "filesystem__move_file", {
        "source": str(ws / "old.txt"),
        "destination": str(ws / "new.txt"),
    }


def test_an_approved_escalation_is_forwarded_and_audited(layout: dict[str, Path]) -> None:
    escalator = FakeEscalator(Verdict.APPROVED)
    name, arguments = move(layout)
    result = with_gate(layout, escalator, lambda gate: gate.call(name, arguments))
    assert not result.is_error, text(result)
    assert (layout["workspace"] / "new.txt").read_text() == "content"
    (request,) = escalator.requests
    assert (request.server, request.tool, request.rule) == (
        "filesystem",
        "move_file",
        "workspace-delete-escalates",
    )
    assert request.paths == (arguments["source"], arguments["destination"])
    assert request.recent_audit  # the human sees what led here
    events = [
        json.loads(x)["event"] for x in (layout["audit"] / "session.jsonl").read_text().splitlines()
    ]
    assert events[-3:] == ["decision", "escalation", "outcome"]
    assert verify_file(layout["audit"] / "session.jsonl", read_key(key_file(layout))).ok


@pytest.mark.parametrize(
    ("escalator", "says"),
    [
        (FakeEscalator(Verdict.DENIED), "denied by test"),
        (FakeEscalator(Verdict.EXPIRED), "expired"),
        (FakeEscalator(Verdict.UNAVAILABLE), "unavailable"),
        (BrokenEscalator(), "the escalation channel failed"),
        (None, "no escalation channel is configured"),
    ],
    ids=["denied", "expired", "unavailable", "broken-channel", "default"],
)
def test_an_escalation_that_is_not_approved_is_not_forwarded(
    layout: dict[str, Path], escalator: Any, says: str
) -> None:
    name, arguments = move(layout)
    result = with_gate(layout, escalator, lambda gate: gate.call(name, arguments))
    assert result.is_error
    assert says in text(result)
    assert (layout["workspace"] / "old.txt").exists()
    assert not (layout["workspace"] / "new.txt").exists()
    last = json.loads((layout["audit"] / "session.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "escalation"
    assert last["verdict"] != "approved"


def test_secrets_in_arguments_never_reach_the_escalation_or_the_log(
    layout: dict[str, Path],
) -> None:
    escalator = FakeEscalator(Verdict.DENIED)
    secret = "sk-ant-api03-secretsecretsecret"

    async def body(gate: Gate) -> None:
        await gate.call("fetch__fetch", {"url": f"https://example.com/?api_key={secret}"})

    with_gate(layout, escalator, body)
    assert secret not in json.dumps(dict(escalator.requests[0].arguments))
    assert secret not in (layout["audit"] / "session.jsonl").read_text()


def _children_named(word: str) -> list[int]:
    found = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as f:
            for pid in f.read().split():
                with open(f"/proc/{pid}/cmdline", "rb") as c:
                    if word.encode() in c.read():
                        found.append(int(pid))
    return found


def test_a_backend_dying_mid_call_answers_with_an_error_and_comes_back(
    layout: dict[str, Path],
) -> None:
    fifo = layout["workspace"] / "pipe"
    os.mkfifo(fifo)  # reading a FIFO with no writer blocks: a call that never finishes

    async def body(gate: Gate) -> tuple[types.CallToolResult, types.CallToolResult, int]:
        backend = gate.backends["filesystem"]
        starts = backend.starts
        async with anyio.create_task_group() as tg:
            box: list[types.CallToolResult] = []

            async def hanging() -> None:
                box.append(await gate.call("filesystem__read_text_file", {"path": str(fifo)}))

            tg.start_soon(hanging)
            # Wait (bounded) until the call is in flight at the backend: its decision is logged.
            log = layout["audit"] / "session.jsonl"
            with anyio.fail_after(10):
                while "pipe" not in log.read_text():
                    await anyio.sleep(0.01)
            (pid,) = _children_named("mcp-server-filesystem")
            os.kill(pid, signal.SIGKILL)
        with anyio.fail_after(30):
            while backend.starts == starts or not backend.running:
                await anyio.sleep(0.05)
        after = await gate.call(
            "filesystem__read_text_file", {"path": str(layout["workspace"] / "hello.txt")}
        )
        return box[0], after, backend.starts - starts

    died, after, restarts = with_gate(layout, None, body)
    assert died.is_error
    assert "stopped during the call" in text(died)
    assert restarts == 1
    assert not after.is_error, text(after)
    assert "hello from the workspace" in text(after)
    outcome = json.loads((layout["audit"] / "session.jsonl").read_text().splitlines()[-3])
    assert outcome["event"] == "outcome"
    assert "stopped during the call" in outcome["error"]


def test_a_workspace_holding_a_protected_path_is_refused_at_start(layout: dict[str, Path]) -> None:
    inside = layout["workspace"] / ".ironcurtain-state"
    inside.mkdir()
    bad = ProxySettings(
        policy_dir=layout["policy"],
        workspace=layout["workspace"],
        audit_file=layout["audit"] / "session.jsonl",
        state_dir=inside,
    )

    async def go() -> None:
        async with running_gate(bad):
            pass

    with pytest.raises(StartupError, match="contains protected paths"):
        anyio.run(go)


def test_when_the_audit_log_cannot_be_written_nothing_is_forwarded(layout: dict[str, Path]) -> None:
    target = layout["workspace"] / "written.txt"

    async def body(gate: Gate) -> types.CallToolResult:
        gate.audit.close()  # its file descriptors are gone: every write now fails
        return await gate.call("filesystem__write_file", {"path": str(target), "content": "x"})

    result = with_gate(layout, None, body)
    assert result.is_error
    assert "audit log cannot be written" in text(result)
    assert not target.exists()


def test_a_backend_that_cannot_start_stops_the_proxy_from_starting(layout: dict[str, Path]) -> None:
    servers = layout["policy"] / "servers.yaml"
    servers.write_text("mcpServers:\n  filesystem:\n    command: /nonexistent/mcp-server\n")
    quick = ProxySettings(
        policy_dir=layout["policy"],
        workspace=layout["workspace"],
        audit_file=layout["audit"] / "session.jsonl",
        state_dir=layout["state"],
        startup_timeout_s=1.0,
    )

    async def go() -> None:
        async with running_gate(quick):
            pass

    with pytest.raises(StartupError, match=r"filesystem \(.*nonexistent"):
        anyio.run(go)


def test_a_full_disk_refuses_every_call_saying_so_and_keeps_the_acknowledged_lines(
    layout: dict[str, Path],
) -> None:
    import errno

    from ironcurtain.audit.writer import FileOps

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    hello = {"path": str(layout["workspace"] / "hello.txt")}

    async def body(gate: Gate) -> list[types.CallToolResult]:
        control = await gate.call("filesystem__read_text_file", hello)
        gate.audit._ops = FileOps(write=full)  # the audit folder's file system fills up
        refused = [await gate.call("filesystem__read_text_file", hello) for _ in range(3)]
        refused.append(await gate.call("filesystem__write_file", {**hello, "content": "x"}))
        return [control, *refused]

    control, *refused = with_gate(layout, None, body)
    assert not control.is_error, text(control)
    for result in refused:
        assert result.is_error
        assert "audit log cannot be written (No space left on device)" in text(result)
    assert (layout["workspace"] / "hello.txt").read_text() == "hello from the workspace\n"
    log = layout["audit"] / "session.jsonl"
    events = [json.loads(x)["event"] for x in log.read_text().splitlines()]
    assert events == ["start", "decision", "outcome"]  # the acknowledged lines, whole
    assert verify_file(log, read_key(key_file(layout))).ok


def test_a_result_over_the_limit_is_refused_naming_it(layout: dict[str, Path]) -> None:
    import dataclasses

    big = layout["workspace"] / "big.txt"
    big.write_text("b" * 3_000_000)
    small = {"path": str(layout["workspace"] / "hello.txt")}
    limited = dataclasses.replace(settings(layout), max_result_bytes=1_000_000)

    async def go() -> tuple[types.CallToolResult, types.CallToolResult]:
        with anyio.fail_after(60):
            async with running_gate(limited) as gate:
                refused = await gate.call("filesystem__read_text_file", {"path": str(big)})
                after = await gate.call("filesystem__read_text_file", small)
                return refused, after

    refused, after = anyio.run(go)
    assert refused.is_error
    assert "larger than the limit of 1000000 bytes (max_result_bytes)" in text(refused)
    assert not after.is_error, text(after)  # the backend's session goes on
    outcome = next(
        json.loads(x)
        for x in (layout["audit"] / "session.jsonl").read_text().splitlines()
        if '"outcome"' in x
    )
    assert "max_result_bytes" in outcome["error"]


def test_an_escalation_record_carries_a_bounded_excerpt_of_the_audit(
    layout: dict[str, Path],
) -> None:
    from ironcurtain.audit.writer import TAIL_BYTES

    escalator = FakeEscalator(Verdict.DENIED)
    name, arguments = move(layout)

    async def body(gate: Gate) -> None:
        for n in range(200):  # a log grown large by earlier calls
            gate.audit.append({"event": "decision", "n": n, "pad": "p" * 60_000})
        await gate.call(name, arguments)

    with_gate(layout, escalator, body)
    (request,) = escalator.requests
    assert 0 < len(request.recent_audit) <= 20
    assert sum(len(line) for line in request.recent_audit) <= TAIL_BYTES


def test_a_refused_request_leaves_a_deny_line_in_the_audit(layout: dict[str, Path]) -> None:
    async def body(gate: Gate) -> None:
        await gate.refuse("POST", "Parse error: NaN is not a JSON number" + "x" * 1000)

    with_gate(layout, None, body)
    log = layout["audit"] / "session.jsonl"
    last = json.loads(log.read_text().splitlines()[-1])
    assert (last["event"], last["effect"], last["rule"]) == (
        "decision",
        "deny",
        "malformed-request",
    )
    assert last["tool"] is None
    assert last["reason"].startswith("Parse error: NaN")
    assert len(last["reason"]) == 300  # bounded
    assert verify_file(log, read_key(key_file(layout))).ok


async def _raises_encoding_error(*args: Any) -> types.CallToolResult:
    raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")


async def _answers_a_lone_surrogate(*args: Any) -> types.CallToolResult:
    # A hostile backend's answer with no UTF-8 form: an error to the agent, never a 500.
    return types.CallToolResult(content=[types.TextContent(type="text", text="\ud800")])


@pytest.mark.parametrize(
    ("backend", "said"),
    [(_raises_encoding_error, "internal error"), (_answers_a_lone_surrogate, "cannot be encoded")],
    ids=["forwarding-raises", "result-has-no-utf8-form"],
)
def test_a_forwarding_failure_of_any_kind_still_writes_the_outcome_line(
    layout: dict[str, Path], backend: Callable[..., Awaitable[types.CallToolResult]], said: str
) -> None:
    async def body(gate: Gate) -> types.CallToolResult:
        gate.backends["filesystem"].call = backend  # type: ignore[method-assign]
        path = str(layout["workspace"] / "hello.txt")
        return await gate.call("filesystem__read_text_file", {"path": path})

    result = with_gate(layout, None, body)
    assert result.is_error
    assert said in text(result)
    lines = [json.loads(x) for x in (layout["audit"] / "session.jsonl").read_text().splitlines()]
    decision, outcome = lines[-2:]
    assert (decision["event"], decision["effect"]) == ("decision", "allow")
    assert (outcome["event"], outcome["call"], outcome["ok"]) == (
        "outcome",
        decision["call"],
        False,
    )


def test_refused_calls_with_large_arguments_cannot_grow_the_log_past_its_limit(
    layout: dict[str, Path],
) -> None:
    """The attack: denied calls whose arguments are as large as a line may hold, as fast as
    the agent can send them. Past the limit every call is refused, saying why, and the log
    stays whole and within it."""
    import dataclasses

    limited = dataclasses.replace(
        settings(layout), audit_max_bytes=400_000, audit_reserve_bytes=100_000
    )
    outside = {"path": "/etc/passwd", "junk": {f"k{n}": "é" * 2000 for n in range(5)}}
    hello = {"path": str(layout["workspace"] / "hello.txt")}

    async def go() -> tuple[types.CallToolResult, list[types.CallToolResult]]:
        with anyio.fail_after(120):
            async with running_gate(limited, None) as gate:
                control = await gate.call("filesystem__read_text_file", hello)
                flood = [await gate.call("filesystem__read_text_file", outside) for _ in range(60)]
                flood.append(await gate.call("filesystem__read_text_file", hello))
                return control, flood

    control, flood = anyio.run(go)
    assert not control.is_error, text(control)  # control: a log with room serves calls
    assert "size limit of 400000 bytes" in text(flood[-1])  # the allowed call too, once full
    log = layout["audit"] / "session.jsonl"
    assert log.stat().st_size <= 400_000
    assert verify_file(log, read_key(key_file(layout))).ok
