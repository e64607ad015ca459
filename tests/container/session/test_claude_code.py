"""The real Claude Code in a real session (`ironcurtain run --agent claude-code --task ...`).

The fake Anthropic vendor plays a script (ironcurtain.fakellm.play): "the model" asks for a
workspace file (the policy allows it), then for /etc/passwd (denied), then gives a final answer.
Claude Code runs both MCP calls through the sidecar and the policy proxy and sends their results
back. The fake records every request it received, so the test checks both ends: what the vendor
saw (the real key, never a fake one; no server-side tools; only the headers our proxy forwards;
each tool result) and what the session recorded (audit, summary, the printed answer).

Every check would fail if Claude Code quietly did something else: refused the tools itself
(--allowedTools), never listed them (tool search), or never reached the vendor.

A second session scripts a move (escalated by the default policy): Claude Code's MCP call waits
while the test approves it through the approval API, and the move's result reaches the vendor.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import docker
import pytest

from ironcurtain.audit import read_key, verify_file
from ironcurtain.audit.anchor import checkpoints_path, key_path
from ironcurtain.fakellm import play
from ironcurtain.session.summary import json_lines, llm_counts, tool_counts

from .conftest import REAL_KEY, RUNTIMES, SERVICE_UID, Env, cli, popen, under_runtime
from .test_run import NOTICE, approve, assert_nothing_left, session_dir

PLAY_COMPOSE = Path(__file__).parent / "play.compose.yaml"
READ = "mcp__ironcurtain__filesystem__read_text_file"
HELLO = "/workspace/hello.txt"
FINAL = "IC-FINAL: the workspace says hello; /etc/passwd stays out of reach."
SCRIPT = {
    "turns": [
        {"text": "Reading it.", "tool_calls": [{"name": READ, "input": {"path": HELLO}}]},
        {"tool_calls": [{"name": READ, "input": {"path": "/etc/passwd"}}]},
        {"text": FINAL},
    ]
}  # fmt: skip
ALLOWED_ID, DENIED_ID = play.tool_use_id(0, 0), play.tool_use_id(1, 0)
# What our MITM proxy never forwards upstream (mitm/server.py): hop-by-hop and proxy headers,
# cookies, and every credential header but the one it sets itself.
NEVER_FORWARDED = (
    "proxy-authorization", "proxy-connection", "cookie", "te", "trailer", "upgrade", "expect",
    "transfer-encoding", "authorization", "x-goog-api-key", "api-key",
)  # fmt: skip
# What the vendor may see: the headers our MITM sets itself, and the ones Claude Code sends (no
# Via, X-Forwarded-For or anything else naming the proxy, the agent or the session).
OURS = ("host", "content-length", "accept-encoding", "x-api-key")
CLIENTS = ("accept", "content-type", "user-agent", "x-app", "x-client-request-id")
CLIENT_PREFIXES = ("anthropic-", "x-stainless-", "x-claude-")
SERVER_TOOL_TYPES = (
    "web_search",
    "web_fetch",
    "code_execution",
    "computer",
    "bash_",
    "text_editor",
)


def _play_dir(root: Path, script: dict[str, Any]) -> Path:
    folder = root / "play"
    folder.mkdir()
    (folder / play.SCRIPT_FILE).write_text(json.dumps(script))
    (folder / play.SCRIPT_FILE).chmod(0o644)
    os.chown(folder, SERVICE_UID, SERVICE_UID)  # the fake (uid 10001) writes its record here
    return folder


def _env(session_env: Env, folder: Path) -> Env:
    return replace(
        session_env, environ={**session_env.environ, "IRONCURTAIN_FAKELLM_PLAY": str(folder)}
    )


@pytest.fixture
def play_dir(tmp_path: Path) -> Path:
    return _play_dir(tmp_path, SCRIPT)


def _tool_results(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for message in request["body"]["messages"]:
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "tool_result":
                found[block["tool_use_id"]] = block
    return found


def _text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, str):
        return content
    return " ".join(str(c.get("text", "")) for c in content or [] if isinstance(c, dict))


@pytest.mark.parametrize("agent_runtime", RUNTIMES)
def test_claude_code_calls_an_allowed_and_a_denied_tool_and_prints_the_scripted_answer(
    session_env: Env,
    workspace: Path,
    play_dir: Path,
    image: Callable[[str], str],
    docker_client: docker.DockerClient,
    agent_runtime: str,
) -> None:
    """Once per runtime: the real client works under gVisor too, where the engine has it."""
    image("agent-claude-code")
    env = under_runtime(_env(session_env, play_dir), agent_runtime, docker_client)
    session_id = secrets.token_hex(4)
    args = env.run_args(
        "--compose-file", str(PLAY_COMPOSE), "--agent", "claude-code",
        "--task", "Read hello.txt, then /etc/passwd, and tell me what you found.",
        "--workspace", str(workspace), "--session-id", session_id,
    )  # fmt: skip
    done = cli(env, *args, timeout_s=420)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "MCP server ironcurtain: connected" in output, output
    assert f"run: agent under {agent_runtime}," in output
    assert f"[answer] {FINAL}" in output  # rendered as it arrived
    assert "refused by Claude Code" not in output

    # The vendor's side: what reached the fake through the MITM proxy.
    seen = json_lines((play_dir / play.RECORD_FILE).read_text())
    assert seen, "the fake vendor received nothing"
    assert {(r["method"], r["target"].partition("?")[0]) for r in seen} <= {
        ("POST", "/v1/messages"),
        ("POST", "/v1/messages/count_tokens"),
    }, [r["target"] for r in seen]
    real = play.digest(REAL_KEY)
    for request in seen:
        headers = request["headers"]
        assert headers.get("x-api-key") == [real], headers.get("x-api-key")
        assert headers.get("host") == ["api.anthropic.com"]
        assert headers.get("accept-encoding") == ["identity"]
        assert [h for h in NEVER_FORWARDED if h in headers] == []
        unexpected = [
            h for h in headers if h not in OURS + CLIENTS and not h.startswith(CLIENT_PREFIXES)
        ]
        assert unexpected == [], unexpected
        assert "sk-ant-" not in json.dumps(request)  # no key in clear: no fake, no real
        for tool in request["body"].get("tools") or []:
            kind = str(tool.get("type", "custom"))
            assert not kind.startswith(SERVER_TOOL_TYPES), tool
    conversation = [
        r
        for r in seen
        if r["target"].partition("?")[0] == "/v1/messages" and r["body"].get("tools")
    ]
    assert len(conversation) == 3, [r["target"] for r in seen]
    offered = {t.get("name") for t in conversation[0]["body"]["tools"]}
    assert READ in offered, sorted(offered)  # listed directly, not deferred behind a search tool
    results = _tool_results(conversation[-1])
    assert set(results) == {ALLOWED_ID, DENIED_ID}, results
    assert not results[ALLOWED_ID].get("is_error"), results[ALLOWED_ID]
    assert "hello from the workspace" in _text(results[ALLOWED_ID])
    assert results[DENIED_ID].get("is_error") is True, results[DENIED_ID]
    assert "outside-workspace" in _text(results[DENIED_ID])
    assert "root:" not in _text(results[DENIED_ID])

    # The session's side: audit, summary and answer agree with what the vendor saw.
    root = session_dir(env, session_id)
    summary = json.loads((root / "summary.json").read_text())
    assert summary["outcome"] == "ok"
    assert summary["answer"] == FINAL
    mcp_log, mitm_log = Path(summary["audit"]["mcp"]), Path(summary["audit"]["mitm"])
    audit = json_lines(mcp_log.read_text())
    decisions = [
        (e["tool"], e["arguments"].get("path"), e["effect"], e["rule"])
        for e in audit
        if e.get("event") == "decision"
    ]
    assert decisions == [
        ("filesystem__read_text_file", "/workspace/hello.txt", "allow", "workspace-read"),
        ("filesystem__read_text_file", "/etc/passwd", "deny", "outside-workspace"),
    ]
    # Both doors' logs verify with the session's keys and the host's checkpoints (anchor/).
    for log in (mcp_log, mitm_log):
        anchor = log.parents[2] / "anchor"
        report = verify_file(log, read_key(key_path(anchor, log)), checkpoints_path(anchor, log))
        assert report.ok, (log, report.problem)
        assert report.lines > 0
    counted = tool_counts(audit)
    assert summary["tools"]["allowed"] == counted.allowed == 1
    assert summary["tools"]["denied"] == counted.denied == 1
    assert summary["tools"]["total"] == counted.total == 2
    metered = llm_counts(json_lines(mitm_log.read_text()))
    assert summary["llm"]["requests"] == metered.requests == len(seen)
    refused = [
        (e.get("event"), e.get("rule"), e.get("reason"), e.get("path"))
        for e in json_lines(mitm_log.read_text())
        if e.get("decision") == "refuse"
    ]
    assert summary["llm"]["refused"] == 0, refused  # what was refused, and why

    for path in (mcp_log, mitm_log, root / "agent-output.log", root / "summary.json"):
        assert REAL_KEY not in path.read_text(), path
    assert REAL_KEY not in output
    assert_nothing_left(env, docker_client, session_id)


MOVE = "mcp__ironcurtain__filesystem__move_file"
MOVED = "IC-FINAL: moved after a human said yes."
SOURCE, TARGET = "/workspace/old.txt", "/workspace/new.txt"


def move_then(final: str) -> dict[str, object]:
    """The vendor's script: move old.txt to new.txt (the policy escalates it), then `final`."""
    move = {"name": MOVE, "input": {"source": SOURCE, "destination": TARGET}}
    return {"turns": [{"tool_calls": [move]}, {"text": final}]}


def test_claude_code_waits_for_a_human_on_an_escalated_call_and_gets_its_result(
    session_env: Env,
    workspace: Path,
    tmp_path: Path,
    image: Callable[[str], str],
    docker_client: docker.DockerClient,
) -> None:
    image("agent-claude-code")
    folder = _play_dir(tmp_path, move_then(MOVED))
    env = _env(session_env, folder)
    session_id = secrets.token_hex(4)
    args = env.run_args(
        "--compose-file", str(PLAY_COMPOSE), "--agent", "claude-code",
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
                waiting = (workspace / "old.txt").exists()  # nothing moved before the decision
                approved = approve(env, found.group(1))
        code = proc.wait(timeout=60)
    text = "".join(output)
    assert code == 0, text
    assert approved is not None, text
    assert waiting, text
    assert f"[answer] {MOVED}" in text
    assert (workspace / "new.txt").read_text() == "to be moved\n"  # the approved move ran
    assert not (workspace / "old.txt").exists()

    seen = json_lines((folder / play.RECORD_FILE).read_text())
    last = [r for r in seen if r["body"].get("tools")][-1]
    result = _tool_results(last)[play.tool_use_id(0, 0)]
    assert not result.get("is_error"), result
    assert "new.txt" in _text(result)
    summary = json.loads((session_dir(env, session_id) / "summary.json").read_text())
    audit = json_lines(Path(summary["audit"]["mcp"]).read_text())
    assert summary["tools"] == asdict(tool_counts(audit))
    assert (summary["tools"]["escalated"], summary["tools"]["approved"]) == (1, 1)
    assert_nothing_left(env, docker_client, session_id)
