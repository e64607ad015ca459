"""IronCurtain's own agent in a real session (`ironcurtain run --agent builtin --task ...`).

The fake Anthropic vendor plays a script (ironcurtain.fakellm.play) in which "the model" writes
code: a program that reads a workspace file through its stub (allowed), one that reads
/etc/passwd (denied: the PolicyDenied traceback must reach the model in the next request), one
that tries the network directly (the curtain stops it), and one that loops forever (the time
budget's deadline stops it, and the session says which budget ended it). The fake records every
request, so the test checks what the model was told, not only what the session printed.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import docker
import pytest

from ironcurtain.fakellm import play
from ironcurtain.session.summary import json_lines, tool_counts

from .conftest import REAL_KEY, Env, cli, popen
from .test_claude_code import PLAY_COMPOSE, _env, _play_dir, _text, _tool_results
from .test_run import NOTICE, approve, assert_nothing_left, session_dir

pytestmark = pytest.mark.container

READ_ALLOWED = "print(filesystem.read_text_file(path='/workspace/hello.txt'))"
READ_DENIED = "print(filesystem.read_text_file(path='/etc/passwd'))"
NETWORK = """\
import socket
for host, port in (("1.1.1.1", 443), ("api.anthropic.com", 443)):
    try:
        socket.create_connection((host, port), timeout=3).close()
        print("CONNECTED", host)
    except OSError as exc:
        print("blocked", host, type(exc).__name__)
"""
# The agent loop is the program's parent, of the same uid: it is undumpable, so its environment
# (the fake key) and memory are not the program's to read.
PEEK = """\
import os
for what in ("environ", "mem"):
    try:
        with open(f"/proc/{os.getppid()}/{what}", "rb") as f:
            f.read(16)
        print(what, "read")
    except OSError as exc:
        print(what, "refused", type(exc).__name__)
"""
FOREVER = "while True:\n    pass\n"
TIME_BUDGET_S = 45  # the whole agent, start to end: far more than the first three programs take


def _code(code: str) -> dict[str, Any]:
    return {"tool_calls": [{"name": "execute_code", "input": {"code": code}}]}


def _results(seen: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    conversation = [r for r in seen if r["target"].partition("?")[0] == "/v1/messages"]
    return conversation, _tool_results(conversation[-1])


@pytest.fixture(autouse=True)
def _images(image: Callable[[str], str]) -> None:
    image("agent-builtin")


def test_the_builtin_agent_runs_code_that_calls_tools_and_the_deadline_stops_a_loop(
    session_env: Env, workspace: Path, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    turns = [READ_ALLOWED, READ_DENIED, NETWORK, PEEK, FOREVER]
    script = {"turns": [_code(code) for code in turns]}
    folder = _play_dir(tmp_path, script)
    env = _env(session_env, folder)
    session_id = secrets.token_hex(4)
    args = env.run_args(
        "--compose-file", str(PLAY_COMPOSE), "--agent", "builtin",
        "--budget", f"seconds={TIME_BUDGET_S}",
        "--task", "Read hello.txt, then /etc/passwd.", "--workspace", str(workspace),
        "--session-id", session_id,
    )  # fmt: skip
    done = cli(env, *args, timeout_s=420)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output  # a budget ended it: not an answer
    assert "[agent] builtin:" in output, output
    assert "[budget] seconds: time budget exhausted" in output, output
    assert "[result] stopped (deadline)" in output, output

    seen = json_lines((folder / play.RECORD_FILE).read_text())
    conversation, results = _results(seen)
    assert len(conversation) == 5, [r["target"] for r in seen]  # none after the budget ran out
    first = conversation[0]["body"]
    assert [t["name"] for t in first["tools"]] == ["execute_code"]  # one tool, ours
    system = first["system"] if isinstance(first["system"], str) else json.dumps(first["system"])
    assert "filesystem.read_text_file(*, path: str" in system  # the stubs, from the listing
    assert "PolicyDenied" in system
    real = play.digest(REAL_KEY)
    for request in seen:
        assert request["headers"].get("x-api-key") == [real]  # the MITM swapped the fake out
        assert "sk-ant-" not in json.dumps(request)

    allowed, denied, network, peek = (results[play.tool_use_id(n, 0)] for n in range(4))
    assert not allowed.get("is_error"), allowed
    assert "hello from the workspace" in _text(allowed)
    # The denied read's exception reached the model in the next request: rule and reason.
    assert denied.get("is_error") is True, denied
    assert "PolicyDenied: policy denied filesystem__read_text_file (rule 'outside-workspace')" in (
        _text(denied)
    )
    assert "root:" not in _text(denied)
    assert "CONNECTED" not in _text(network), _text(network)
    assert _text(network).count("blocked") == 2, _text(network)
    assert "environ refused PermissionError" in _text(peek), _text(peek)
    assert "mem refused PermissionError" in _text(peek), _text(peek)

    summary = json.loads((session_dir(env, session_id) / "summary.json").read_text())
    assert summary["outcome"].startswith("failed: time budget exhausted"), summary["outcome"]
    assert summary["answer"].startswith("stopped: time budget exhausted")
    audit = json_lines(Path(summary["audit"]["mcp"]).read_text())
    decisions = [
        (e["tool"], e["arguments"].get("path"), e["effect"], e["rule"])
        for e in audit
        if e.get("event") == "decision"
    ]
    assert decisions == [
        ("filesystem__read_text_file", "/workspace/hello.txt", "allow", "workspace-read"),
        ("filesystem__read_text_file", "/etc/passwd", "deny", "outside-workspace"),
    ]
    assert summary["tools"] == asdict(tool_counts(audit))
    assert summary["llm"]["requests"] == 5
    assert REAL_KEY not in output
    assert_nothing_left(env, docker_client, session_id)


MOVE = """\
print(filesystem.move_file(source='/workspace/old.txt', destination='/workspace/new.txt'))
"""
MOVED = "Moved after a human said yes."


def test_an_escalated_call_blocks_the_program_until_a_human_approves(
    session_env: Env, workspace: Path, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    folder = _play_dir(tmp_path, {"turns": [_code(MOVE), {"text": MOVED}]})
    env = _env(session_env, folder)
    session_id = secrets.token_hex(4)
    args = env.run_args(
        "--compose-file", str(PLAY_COMPOSE), "--agent", "builtin",
        "--task", "Rename old.txt to new.txt.", "--workspace", str(workspace),
        "--session-id", session_id, "--escalation-timeout", "120",
    )  # fmt: skip
    output, approved, waiting = [], None, False
    with popen(env, *args) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:  # the session's own output drives the test: no polling
            output.append(line)
            found = NOTICE.search(line)
            if found and approved is None:
                waiting = (workspace / "old.txt").exists()
                approved = approve(env, found.group(1))
        code = proc.wait(timeout=60)
    text = "".join(output)
    assert code == 0, text
    assert (approved is not None, waiting) == (True, True), text
    assert f"[answer] {MOVED}" in text
    assert (workspace / "new.txt").read_text() == "to be moved\n"
    seen = json_lines((folder / play.RECORD_FILE).read_text())
    _, results = _results(seen)
    moved = results[play.tool_use_id(0, 0)]
    assert not moved.get("is_error"), moved
    assert "new.txt" in _text(moved)
    summary = json.loads((session_dir(env, session_id) / "summary.json").read_text())
    assert (summary["outcome"], summary["answer"]) == ("ok", MOVED)
    assert (summary["tools"]["escalated"], summary["tools"]["approved"]) == (1, 1)
    assert_nothing_left(env, docker_client, session_id)


# Each request the fake answers reports 12 + 34 tokens; at claude-sonnet-4-5's estimated price
# (MITM table: $3 / $15 per million) that is $0.000546. Each budget below allows one request.
@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("steps=2", "step budget exhausted (2 of 2 steps)"),
        ("tokens=50", "token budget exhausted (92 of 50 tokens)"),
        ("cost_usd=0.001", "cost budget exhausted ($0.0011 of $0.0010 estimated)"),
    ],
)
def test_each_budget_ends_the_session_saying_which(
    spec: str,
    said: str,
    session_env: Env,
    workspace: Path,
    tmp_path: Path,
    docker_client: docker.DockerClient,
) -> None:
    folder = _play_dir(tmp_path, {"turns": [_code("print(1)")] * 5})
    env = _env(session_env, folder)
    session_id = secrets.token_hex(4)
    args = env.run_args(
        "--compose-file", str(PLAY_COMPOSE), "--agent", "builtin", "--budget", spec,
        "--task", "Count.", "--workspace", str(workspace), "--session-id", session_id,
    )  # fmt: skip
    done = cli(env, *args, timeout_s=300)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    name = spec.partition("=")[0]
    assert f"[budget] {name}: {said}" in output, output
    conversation, _ = _results(json_lines((folder / play.RECORD_FILE).read_text()))
    assert len(conversation) == 2
    summary = json.loads((session_dir(env, session_id) / "summary.json").read_text())
    assert summary["outcome"] == f"failed: {said}"
    assert summary["llm"]["requests"] == 2
    assert_nothing_left(env, docker_client, session_id)


def test_the_interactive_mode_keeps_one_conversation_across_tasks(
    session_env: Env, workspace: Path, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    from .test_interactive import START_S, start_on_pty, stop

    script = {"turns": [_code(READ_ALLOWED), {"text": "IC-ONE read it"}, {"text": "IC-TWO next"}]}
    folder = _play_dir(tmp_path, script)
    env = _env(session_env, folder)
    session_id = secrets.token_hex(4)
    args = env.run_args(
        "--compose-file", str(PLAY_COMPOSE), "--agent", "builtin", "--pty",
        "--workspace", str(workspace), "--session-id", session_id,
    )  # fmt: skip
    term, slave = start_on_pty(env, args, 24, 100)
    try:
        term.expect(rb"builtin> ", within_s=START_S)
        term.send("read hello.txt\r")
        term.expect(rb"\[result\] exit 0: hello from the workspace")
        term.expect(rb"\[answer\] IC-ONE read it\r\n")
        term.expect(rb"builtin> ")
        term.send("and then?\r")
        term.expect(rb"\[answer\] IC-TWO next\r\n")
        term.expect(rb"builtin> ")
        term.send("exit\r")
        code = term.wait()
    finally:
        stop(term.proc)
        os.close(term.master)
        os.close(slave)
    assert code == 0, term.text(0)
    conversation, _ = _results(json_lines((folder / play.RECORD_FILE).read_text()))
    assert len(conversation) == 3
    last = conversation[-1]["body"]["messages"]
    said = [
        b["text"]
        for m in last
        if m["role"] == "user"
        for b in (m["content"] if isinstance(m["content"], list) else [])
        if b.get("type") == "text"
    ]
    assert said == ["read hello.txt", "and then?"]  # one conversation: the first task is there
    summary = json.loads((session_dir(env, session_id) / "summary.json").read_text())
    assert (summary["outcome"], summary["llm"]["requests"]) == ("ok", 3)
    assert_nothing_left(env, docker_client, session_id)
