"""The real Codex CLI in a real session (`ironcurtain run --agent codex --task ...`).

The fake OpenAI vendor plays a script in the Responses API, streamed as SSE
(ironcurtain.fakellm.responses): "the model" asks for a workspace file (the policy allows it),
then for /etc/passwd (denied), then gives a final answer. Codex runs both MCP calls through the
sidecar and the policy proxy and sends their outputs back. The fake records every request it
received, so the test checks both ends: what the vendor saw (the real key, never a fake one;
only client tools; only the headers our proxy forwards; each tool output) and what the session
recorded (audit, summary with the metered usage, the printed answer).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from ironcurtain.fakellm import play, responses
from ironcurtain.keystore import KeyStore
from ironcurtain.session.summary import json_lines, llm_counts, tool_counts

from .conftest import REAL_KEY, Env, cli
from .test_claude_code import NEVER_FORWARDED, PLAY_COMPOSE, _env, _play_dir
from .test_run import assert_nothing_left, session_dir

REAL_OPENAI_KEY = "sk-proj-REAL-session-test-key-0123456789abcdef0123456789abcdef"
READ = "mcp__ironcurtain__filesystem__read_text_file"
HELLO = "/workspace/hello.txt"
FINAL = "IC-FINAL: Codex read hello; /etc/passwd stays out of reach."
SCRIPT = {
    "turns": [
        {"text": "Reading it.", "tool_calls": [{"name": READ, "input": {"path": HELLO}}]},
        {"tool_calls": [{"name": READ, "input": {"path": "/etc/passwd"}}]},
        {"text": FINAL},
    ]
}  # fmt: skip
ALLOWED_ID, DENIED_ID = responses.call_id(0, 0), responses.call_id(1, 0)
# What the vendor may see: the headers our MITM sets itself, and the ones Codex sends.
OURS = ("host", "content-length", "accept-encoding", "authorization")
CLIENTS = ("accept", "content-type", "user-agent", "originator", "version", "session_id")


def _outputs(request: dict[str, Any]) -> dict[str, str]:
    """call_id -> the tool output Codex sent back (text, however it shaped it)."""
    found = {}
    for item in request["body"].get("input") or []:
        if isinstance(item, dict) and item.get("type") == "function_call_output":
            output = item.get("output")
            if not isinstance(output, str):
                output = json.dumps(output)
            found[item["call_id"]] = output
    return found


def test_codex_calls_an_allowed_and_a_denied_tool_and_prints_the_scripted_answer(
    session_env: Env,
    workspace: Path,
    tmp_path: Path,
    image: Callable[[str], str],
    docker_client: docker.DockerClient,
) -> None:
    image("agent-codex")
    KeyStore(session_env.state / "keys").set("openai", REAL_OPENAI_KEY)
    folder = _play_dir(tmp_path, SCRIPT)
    env = _env(session_env, folder)
    session_id = secrets.token_hex(4)
    args = env.run_args(
        "--compose-file", str(PLAY_COMPOSE), "--agent", "codex",
        "--upstream", "api.openai.com=fakellm:8443",
        "--task", "Read hello.txt, then /etc/passwd, and tell me what you found.",
        "--workspace", str(workspace), "--session-id", session_id,
    )  # fmt: skip
    done = cli(env, *args, timeout_s=420)
    output = done.stdout + done.stderr
    record = folder / play.RECORD_FILE
    seen = json_lines(record.read_text()) if record.exists() else []
    assert done.returncode == 0, (output, seen)
    assert f"[agent] {FINAL}" in output, output  # rendered as it arrived
    assert f"answer: {FINAL}" in output

    # The vendor's side: what reached the fake through the MITM proxy.
    assert seen, "the fake vendor received nothing"
    assert {(r["method"], r["target"].partition("?")[0]) for r in seen} <= {
        ("POST", "/v1/responses"),
        ("GET", "/v1/models"),
    }, [r["target"] for r in seen]
    real = play.digest(REAL_OPENAI_KEY)
    for request in seen:
        headers = request["headers"]
        assert headers.get("authorization") == [play.digest(f"Bearer {REAL_OPENAI_KEY}")], (
            headers.get("authorization"),
            real,
        )
        assert headers.get("host") == ["api.openai.com"]
        assert [h for h in NEVER_FORWARDED if h in headers and h != "authorization"] == []
        unexpected = [h for h in headers if h not in OURS + CLIENTS]
        assert unexpected == [], unexpected
        assert "sk-proj-" not in json.dumps(request)  # no key in clear: no fake, no real
    conversation = [r for r in seen if r["target"] == "/v1/responses" and r["body"].get("tools")]
    assert len(conversation) == 3, [r["target"] for r in seen]
    results = _outputs(conversation[-1])
    assert set(results) == {ALLOWED_ID, DENIED_ID}, results
    assert "hello from the workspace" in results[ALLOWED_ID]
    assert "outside-workspace" in results[DENIED_ID]
    assert "root:" not in results[DENIED_ID]

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
    counted = tool_counts(audit)
    assert (summary["tools"]["allowed"], summary["tools"]["denied"]) == (1, 1)
    assert summary["tools"]["total"] == counted.total == 2
    metered = llm_counts(json_lines(mitm_log.read_text()))
    assert summary["llm"]["requests"] == metered.requests == len(seen)
    assert summary["llm"]["input_tokens"] == 3 * play.INPUT_TOKENS  # what the fake reported
    assert summary["llm"]["output_tokens"] == 3 * play.OUTPUT_TOKENS
    assert summary["llm"]["cost_usd"] > 0
    # No request of Codex's was refused; the only refusals are CONNECTs: the start-up door probe
    # (a CONNECT without TLS) and Codex's side hosts, which are no door of ours.
    refused = [
        (e.get("event"), e.get("host"), e.get("rule"))
        for e in json_lines(mitm_log.read_text())
        if e.get("decision") == "refuse"
    ]
    assert {r for r in refused if r[2] != "tls"} <= {
        ("connect", "github.com:443", "host"),
        ("connect", "api.github.com:443", "host"),
        ("connect", "chatgpt.com:443", "host"),
    }, refused
    assert all(event == "connect" for event, _, _ in refused), refused
    print(json.dumps(summary["llm"], indent=1))
    for path in (mcp_log, mitm_log, root / "agent-output.log", root / "summary.json"):
        assert REAL_OPENAI_KEY not in path.read_text(), path
        assert REAL_KEY not in path.read_text(), path
    assert REAL_OPENAI_KEY not in output
    assert_nothing_left(env, docker_client, session_id)


@pytest.fixture(autouse=True)
def _no_openai_key_after(session_env: Env) -> Any:
    yield
    KeyStore(session_env.state / "keys").path_for("openai").unlink(missing_ok=True)
