"""Session start and teardown through the real compose.yaml (images already built).

start_s: from `Session.prepare()` (session folder, keys, secrets, settings) through compose up
(every door answering from inside the agent) and the isolation check, to agent-ready.
teardown_s: compose down and removal of the session's secrets.
git_first_call_s / git_second_call_s, fs_first_call_s / fs_second_call_s: one git (then one
filesystem) tool call from inside the agent after start-up (its MCP client's start included); the
first starts that server's room on demand, the second is its baseline (target for a first call:
1.5 s). Then the same start for 8 concurrent sessions; `concurrent_start_ratio` compares
their slowest start with one session's start measured in the same run (target <= 2). The
team-shared stack is started once, before timing (a real team has it running already), and
stopped at the end. The builtin agent's per-step figures (bench/builtin.py) come with them.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import builtin
from ironcurtain.keystore import KeyStore
from ironcurtain.session.hardening import AGENT_UID
from ironcurtain.session.run import Options, Session

REPO = Path(__file__).resolve().parents[1]
ROUNDS = 2
CONCURRENT = 8


def _session(environ: dict[str, str], workspace: Path) -> Session:
    options = Options(task="(bench)", agent="scripted", workspace=workspace, build_images=False)
    return Session(options, say=lambda _: None, environ=environ)


def _start(session: Session) -> float:
    began = time.perf_counter()
    session.prepare()
    session.up()
    session.check_isolation()
    return time.perf_counter() - began


def _stop(session: Session) -> float:
    began = time.perf_counter()
    session.teardown()
    return time.perf_counter() - began


# One tool call from inside the agent, through the MCP door, as an agent's client makes it.
CALL = """\
import json, sys, anyio
from mcp import Client

async def main():
    with anyio.fail_after(120):
        async with Client("http://sidecar:8080/mcp") as client:
            result = await client.call_tool(sys.argv[1], json.loads(sys.argv[2]))
            print("answered", result.is_error)

anyio.run(main)
"""


GIT = ("git__git_status", '{"repo_path": "/workspace"}')
FS = ("filesystem__list_directory", '{"path": "/workspace"}')


def _call(session: Session, tool: tuple[str, str]) -> float:
    """Wall time of one tool call from the agent (its client's start included)."""
    agent = session.client.containers.get(f"{session.name.project}-agent-1")
    began = time.perf_counter()
    done = agent.exec_run(["python3", "-c", CALL, *tool])
    elapsed = time.perf_counter() - began
    if b"answered" not in done.output:
        raise RuntimeError(f"the call {tool[0]} failed: {done.output.decode(errors='replace')}")
    return elapsed


def _one(environ: dict[str, str], workspace: Path) -> tuple[float, float, dict[str, float]]:
    session = _session(environ, workspace)
    try:
        start = _start(session)
        # A server's room starts on its first call: its cost, against a second call of the same
        # session as the baseline.
        timings = {
            "git_first": _call(session, GIT),
            "git_second": _call(session, GIT),
            "fs_first": _call(session, FS),
            "fs_second": _call(session, FS),
        }
    finally:
        stop = _stop(session)
    return start, stop, {**session.timings, **timings}


def _concurrent(
    environ: dict[str, str], workspace: Path
) -> tuple[list[float], list[float], list[dict[str, float]]]:
    sessions = [_session(environ, workspace) for _ in range(CONCURRENT)]
    starts: list[float] = [0.0] * CONCURRENT
    stops: list[float] = [0.0] * CONCURRENT
    errors: list[BaseException] = []

    def start(i: int) -> None:
        try:
            starts[i] = _start(sessions[i])
        except BaseException as exc:  # reported after every session is torn down
            errors.append(exc)

    def stop(i: int) -> None:
        stops[i] = _stop(sessions[i])

    for action in (start, stop):
        threads = [threading.Thread(target=action, args=(i,)) for i in range(CONCURRENT)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return starts, stops, [dict(s.timings) for s in sessions]


def _cli(environ: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "ironcurtain.cli", *args],
        cwd=REPO,
        env=environ,
        check=True,
        capture_output=True,
        timeout=300,
    )


def bench_state(root: Path, shared: str, port: int) -> tuple[dict[str, str], Path]:
    """A state folder with a stand-in key, a workspace any agent uid may write, and the
    environment that points sessions and their own shared stack (`shared`, on `port`) at them;
    images built and the stack up. Returns (environment, workspace)."""
    root.chmod(0o755)
    state = root / "state"
    KeyStore(state / "keys").set("anthropic", "sk-ant-api03-bench-only-not-a-real-key-0123")
    workspace = root / "workspace"
    workspace.mkdir()
    os.chown(workspace, AGENT_UID, AGENT_UID)  # the agent runs as the owner
    environ = {
        **os.environ,
        "IRONCURTAIN_STATE_DIR": str(state),
        "IRONCURTAIN_SHARED_DIR": str(state / "shared"),
        "IRONCURTAIN_SHARED_PROJECT": shared,
        "IRONCURTAIN_SHARED_NETWORK": shared,
        "IRONCURTAIN_APPROVAL_PORT": str(port),
        "PYTHONPATH": str(REPO / "services"),
    }
    _cli(environ, "images", "build")
    _cli(environ, "shared", "up")
    return environ, workspace


def run() -> dict[str, float | int | str]:
    with tempfile.TemporaryDirectory(prefix="ironcurtain-bench-session-") as tmp:
        environ, workspace = bench_state(Path(tmp), "ic-bench-shared", 18479)
        load_before = os.getloadavg()[0]
        try:
            singles = [_one(environ, workspace) for _ in range(ROUNDS)]
            starts, stops, timings = _concurrent(environ, workspace)
            load_after = os.getloadavg()[0]
        finally:
            _cli(environ, "shared", "down")
    start_s = statistics.median(s for s, _, _ in singles)
    stop_s = statistics.median(t for _, t, _ in singles)
    phases = {
        f"start_{phase}_s": round(statistics.median(p[phase] for _, _, p in singles), 2)
        for phase in ("prepare", "up", "compose_up", "check")
        if all(phase in p for _, _, p in singles)
    }
    git = {
        f"{name}_call_s": round(statistics.median(p[name] for _, _, p in singles), 2)
        for name in ("git_first", "git_second", "fs_first", "fs_second")
    }
    return {
        **phases,
        **git,
        "rounds": ROUNDS,
        # the machine is shared: its load beside the figures
        "load_avg_1m_before": round(load_before, 2),
        "load_avg_1m_after": round(load_after, 2),
        "start_s": round(start_s, 2),
        "teardown_s": round(stop_s, 2),
        "concurrent": CONCURRENT,
        "concurrent_start_max_s": round(max(starts), 2),
        "concurrent_teardown_max_s": round(max(stops), 2),
        "concurrent_start_ratio": round(max(starts) / start_s, 2),
        # where the slowest concurrent start spent its time, beside the single start's phases
        **{
            f"concurrent_{phase}_max_s": round(max(t.get(phase, 0.0) for t in timings), 2)
            for phase in ("prepare", "up", "check")
        },
        "target_start_s": 2,
        "target_first_call_s": 1.5,
        "target_teardown_s": 5,
        "target_concurrent_start_ratio": 2,
        # the builtin agent's per-step overhead (bench/builtin.py, no Docker): issue 20
        **builtin.step_overhead(),
    }
