"""The real Claude Code, interactive: `ironcurtain run --pty --agent claude-code`.

The user's terminal is a pty this test owns; Claude Code's own (Ink) interface runs in the agent
container through our relay, and the fake vendor plays the model: a move in the workspace (the
default policy escalates it), then a final text. The test checks that the interface comes up at
its prompt (no trust or onboarding dialog left blocking), types a prompt, sees the escalation
notice as a whole line in its terminal, approves it from the CLI, sees the move happen and the
final text in the interface, resizes its terminal and sees Claude Code redraw at the new width,
exits Claude Code with Ctrl-C twice, and finds the session torn down with a summary that matches
the audit, and its terminal back in the mode (and screen modes) it had.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import termios
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import docker

from ironcurtain.fakellm import play
from ironcurtain.session.summary import json_lines, tool_counts
from ironcurtain.session.terminal import Modes, set_window_size

from .conftest import REAL_KEY, Env, cli
from .test_claude_code import _env, _play_dir, _text, _tool_results, move_then
from .test_interactive import NOTICE, START_S, Terminal, start_on_pty, stop
from .test_run import assert_nothing_left, session_dir

FINAL = "IC-FINAL: renamed after a human said yes."
PROMPT = "Rename old.txt to new.txt please"
RULE = "\u2500"  # Claude Code's input box is drawn with a rule as wide as the terminal
# What the screen says, roughly: escape sequences (Ink moves the cursor instead of writing
# spaces) and whitespace dropped, so words can be found whatever the layout.
_ESCAPES = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def squeezed(data: bytes) -> str:
    text = _ESCAPES.sub(b"", data).decode("utf-8", "replace")
    return re.sub(r"\s+", "", text)


def expect_text(term: Terminal, words: str, within_s: float = 60.0) -> None:
    """Wait until `words` (spaces ignored) is on the screen, reading the terminal meanwhile."""
    wanted = re.sub(r"\s+", "", words)
    start = term.cursor
    deadline = time.monotonic() + within_s
    while wanted not in squeezed(bytes(term.seen[start:])):
        left = deadline - time.monotonic()
        assert left > 0, f"no {words!r} on screen after:\n{squeezed(bytes(term.seen[start:]))}"
        assert term.proc.poll() is None, f"run ended:\n{term.text(0)}"
        term._pump(min(left, 1.0))
    term.cursor = len(term.seen)


def until(term: Terminal, done: Callable[[], bool], what: str, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while not done():
        left = deadline - time.monotonic()
        assert left > 0, f"{what}: not after {within_s}s:\n{squeezed(bytes(term.seen))[-2000:]}"
        term._pump(min(left, 0.5))


def start(env: Env, workspace: Path, session_id: str, rows: int, cols: int) -> tuple[Terminal, int]:
    args = env.run_args(
        "--compose-file", str(Path(__file__).parent / "play.compose.yaml"),
        "--agent", "claude-code", "--pty", "--workspace", str(workspace),
        "--session-id", session_id, "--escalation-timeout", "120",
    )  # fmt: skip
    return start_on_pty(env, args, rows, cols)


def test_claude_code_interactive_shows_escalations_follows_resizes_and_tears_down_on_exit(
    session_env: Env,
    workspace: Path,
    tmp_path: Path,
    image: Callable[[str], str],
    docker_client: docker.DockerClient,
) -> None:
    image("agent-claude-code")
    folder = _play_dir(tmp_path, move_then(FINAL))
    env = _env(session_env, folder)
    session_id = secrets.token_hex(4)
    term, slave = start(env, workspace, session_id, 30, 100)
    before = termios.tcgetattr(slave)
    try:
        # The interface is at its prompt: no trust-folder or onboarding dialog in the way.
        term.expect(rb"run: interactive session", within_s=START_S)
        opened = term.cursor
        term.expect(rb"\xe2\x9d\xaf", within_s=120)  # the input box's prompt sign
        until(term, lambda: RULE * 100 in term.text(opened), "the input box at 100 columns")
        shown = squeezed(bytes(term.seen[opened:]))
        assert "trustthisfolder" not in shown, shown
        assert "Chooseyourtheme" not in shown, shown

        # The user types a prompt; the model asks for a move, which the policy escalates.
        term.send(PROMPT)
        expect_text(term, PROMPT)
        term.send("\r")
        found = term.expect(NOTICE, within_s=120)
        escalation = found.group(1).decode()
        assert f"`ironcurtain approve {escalation}`".encode() in found.group(0)
        assert (workspace / "old.txt").exists()  # nothing moved before the decision
        assert not (workspace / "new.txt").exists()

        token = session_env.shared_dir / "approval_token"
        url = f"http://127.0.0.1:{session_env.environ['IRONCURTAIN_APPROVAL_PORT']}"
        approved = cli(
            env, "approve", escalation, "--yes", "--url", url, "--token-file", str(token),
            "--reason", "the interactive Claude Code test approves", timeout_s=30,
        )  # fmt: skip
        assert approved.returncode == 0, approved.stdout + approved.stderr
        until(term, (workspace / "new.txt").exists, "the approved move")
        assert (workspace / "new.txt").read_text() == "to be moved\n"
        expect_text(term, FINAL, within_s=120)  # the model's next turn, shown in the interface

        # The user's window grows: Claude Code itself redraws its input box at the new width.
        assert RULE * 101 not in term.text(opened)
        resized = len(term.seen)
        set_window_size(term.master, 40, 132)
        until(term, lambda: RULE * 132 in term.text(resized), "a redraw at 132 columns")

        # Ctrl-C on an empty prompt, twice: Claude Code exits and the session tears down.
        term.send("\x03")
        expect_text(term, "again to exit", within_s=30)
        term.send("\x03")
        code = term.wait(within_s=180)
    finally:
        stop(term.proc)
        after = termios.tcgetattr(slave)
        os.close(term.master)
        os.close(slave)
    output = term.text(0)
    assert code == 0, output
    assert "run: exit 0" in output
    assert after == before  # the relay put the terminal back as it found it
    left_on = Modes()
    left_on.feed(bytes(term.seen))
    assert left_on.restore() == b""  # no mouse reports, alternate screen, ... left behind
    assert REAL_KEY not in output
    assert_nothing_left(env, docker_client, session_id)

    seen = json_lines((folder / play.RECORD_FILE).read_text())
    last = [r for r in seen if r["body"].get("tools")][-1]
    result = _tool_results(last)[play.tool_use_id(0, 0)]
    assert not result.get("is_error"), result  # the vendor got the approved move's result
    assert "new.txt" in _text(result)
    assert PROMPT in json.dumps(last["body"]["messages"][0])  # what the test typed
    summary = json.loads((session_dir(env, session_id) / "summary.json").read_text())
    assert summary["outcome"] == "ok"
    assert summary["task"] == "(interactive)"
    audit = json_lines(Path(summary["audit"]["mcp"]).read_text())
    assert summary["tools"] == asdict(tool_counts(audit))
    assert (summary["tools"]["escalated"], summary["tools"]["approved"]) == (1, 1)
