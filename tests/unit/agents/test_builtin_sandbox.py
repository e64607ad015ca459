"""The code sandbox: a fresh interpreter per program, its limits, its output bound, and stubs
that call the door, with time spent waiting in a tool not counted against the program."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ironcurtain.agents import builtin_stubs
from ironcurtain.agents.builtin_sandbox import Limits, run

from . import fakemcp

SLOW_S = 1.5
TOOLS = [
    {"name": "fs__read", "inputSchema": {"type": "object", "required": ["path"],
                                         "properties": {"path": {"type": "string"}}}},
    {"name": "fs__slow", "inputSchema": {"type": "object", "properties": {}}},
    {"name": "fs__denied", "inputSchema": {"type": "object", "properties": {}}},
]  # fmt: skip
DENIED = "IronCurtain policy denied fs__denied (rule 'outside-workspace'): /etc/passwd is outside"
GATE = threading.Event()  # never set: the slow tool waits its full SLOW_S, like a human deciding


def _slow(_args: dict[str, Any]) -> dict[str, Any]:
    GATE.wait(SLOW_S)
    return fakemcp.text("slow done")


@pytest.fixture(scope="module")
def door() -> Iterator[fakemcp.Door]:
    answers: dict[str, fakemcp.Answer] = {
        "fs__read": lambda a: fakemcp.text(f"contents of {a['path']}"),
        "fs__slow": _slow,
        "fs__denied": lambda _a: fakemcp.text(DENIED, is_error=True),
    }
    with fakemcp.serve(fakemcp.Door(TOOLS, answers)) as running:
        yield running


STUBS = builtin_stubs.source(builtin_stubs.stubs(TOOLS))


def go(code: str, door: fakemcp.Door, **kw: Any) -> Any:
    return run(code, STUBS, door.url, **kw)


def test_a_program_prints_and_exits(door: fakemcp.Door) -> None:
    result = go("import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(4)", door)
    assert (result.exit_code, result.stdout, result.stderr, result.stopped) == (
        4,
        "out\n",
        "err\n",
        None,
    )


def test_a_stub_calls_the_door_and_returns_the_text(door: fakemcp.Door) -> None:
    result = go("print(fs.read(path='/workspace/a.txt'))", door)
    assert result.stdout == "contents of /workspace/a.txt\n", result.stderr
    assert door.calls[-1] == ("fs__read", {"path": "/workspace/a.txt"})


def test_a_denial_raises_policy_denied_with_rule_and_reason(door: fakemcp.Door) -> None:
    code = (
        "try:\n    fs.denied()\nexcept PolicyDenied as exc:\n"
        "    print(exc.rule, '|', exc.reason)\nfs.denied()\n"
    )
    result = go(code, door)
    assert result.stdout == "outside-workspace | /etc/passwd is outside\n"
    assert result.exit_code == 1
    # Uncaught, the traceback shows the program's line and the exception, not our frames.
    assert 'File "<program>", line 5' in result.stderr
    assert "fs.denied()" in result.stderr
    assert "PolicyDenied: policy denied fs__denied (rule 'outside-workspace')" in result.stderr
    assert "builtin_child" not in result.stderr


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("def f(:\n", "SyntaxError"),
        ("x = 1\0", "SyntaxError"),
        ("raise KeyboardInterrupt", "KeyboardInterrupt"),
    ],
)
def test_a_program_that_cannot_compile_or_raises_anything_gets_its_own_traceback(
    door: fakemcp.Door, code: str, error: str
) -> None:
    result = go(code, door)
    assert result.exit_code == 1
    assert error in result.stderr
    assert "builtin_child" not in result.stderr


def test_a_program_that_loops_forever_is_stopped_at_its_time_limit(door: fakemcp.Door) -> None:
    began = time.monotonic()
    result = go("while True:\n    pass", door, limits=Limits(seconds=1.0))
    assert (result.exit_code, result.stopped) == (None, "time limit")
    assert 1.0 <= time.monotonic() - began < 5


def test_the_deadline_stops_it_whatever_its_own_limit(door: fakemcp.Door) -> None:
    result = go("while True:\n    pass", door, deadline=time.monotonic() + 0.5)
    assert (result.exit_code, result.stopped) == (None, "deadline")


def test_time_waiting_in_a_tool_does_not_count_against_the_program(door: fakemcp.Door) -> None:
    # The tool takes SLOW_S (1.5 s), more than the 1 s limit: the program still finishes.
    result = go("print(fs.slow())", door, limits=Limits(seconds=1.0))
    assert (result.exit_code, result.stdout) == (0, "slow done\n"), result.stderr


def test_but_the_deadline_counts_time_waiting_in_a_tool(door: fakemcp.Door) -> None:
    result = go("print(fs.slow())", door, deadline=time.monotonic() + 0.5)
    assert result.stopped == "deadline"


def test_a_program_cannot_fake_being_in_a_tool_call_past_its_cpu_limit(door: fakemcp.Door) -> None:
    # It may write `[` on the status pipe itself; the CPU limit (its own seconds + 1) still holds.
    code = (
        "import os\n"
        "for fd in range(3, 64):\n"
        "    try:\n        os.write(fd, b'[')\n    except OSError:\n        pass\n"
        "while True:\n    pass\n"
    )
    began = time.monotonic()
    result = go(code, door, limits=Limits(seconds=1.0))
    assert result.exit_code != 0
    assert time.monotonic() - began < 6


def test_a_program_that_closes_its_status_pipe_is_still_bounded(door: fakemcp.Door) -> None:
    code = (
        "import os, time\n"
        "for fd in range(3, 64):\n"
        "    try:\n        os.close(fd)\n    except OSError:\n        pass\n"
        "time.sleep(60)\n"
    )
    began = time.monotonic()
    result = go(code, door, limits=Limits(seconds=1.0))
    assert result.stopped == "time limit"
    assert time.monotonic() - began < 5


def test_memory_past_the_limit_fails_the_program(door: fakemcp.Door) -> None:
    result = go("x = bytearray(700 * 1024 * 1024)", door, limits=Limits(memory_bytes=512 << 20))
    assert result.exit_code == 1
    assert "MemoryError" in result.stderr


def test_the_program_cannot_raise_its_own_memory_limit(door: fakemcp.Door) -> None:
    code = "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))\n"
    result = go(code, door, limits=Limits(memory_bytes=512 << 20))
    assert result.exit_code == 1
    assert "ValueError" in result.stderr or "PermissionError" in result.stderr


def test_output_is_bounded_and_the_rest_counted(door: fakemcp.Door) -> None:
    result = go("import sys\nsys.stdout.write('x' * 100_000)\nsys.stderr.write('y' * 50)", door,
                limits=Limits(output_chars=1000))  # fmt: skip
    assert result.stdout == "x" * 1000 + "\n[... 99000 more bytes not shown]"
    assert result.stderr == "y" * 50


def test_each_program_gets_a_fresh_interpreter(door: fakemcp.Door) -> None:
    go("import builtins\nbuiltins.LEFT_BEHIND = 1", door)
    result = go("import builtins\nprint(hasattr(builtins, 'LEFT_BEHIND'))", door)
    assert result.stdout == "False\n"


def test_the_fake_llm_key_is_not_in_the_programs_environment(door: fakemcp.Door) -> None:
    env = {**os.environ, "IRONCURTAIN_ANTHROPIC_FAKE_KEY": "sk-ant-fake", "OTHER": "kept"}
    code = "import os\nprint(os.environ.get('IRONCURTAIN_ANTHROPIC_FAKE_KEY'), os.environ['OTHER'])"
    assert go(code, door, environ=env).stdout == "None kept\n"


def test_what_it_left_running_in_its_group_is_killed(door: fakemcp.Door, tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    code = (
        "import subprocess, sys\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        f"open({str(marker)!r}, 'w').write(str(p.pid))\n"
    )
    result = go(code, door)
    assert result.exit_code == 0, result.stderr
    pid = int(marker.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:  # reaped by init, asynchronously
        os.sched_yield()
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


ESCAPE = """
import subprocess, sys
p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)
print(p.pid, flush=True)
"""


def test_a_process_that_left_the_group_and_holds_the_output_does_not_hang_the_run(
    door: fakemcp.Door,
) -> None:
    began = time.monotonic()
    result = go(ESCAPE, door)
    pid = int(result.stdout.split()[0])
    try:
        assert time.monotonic() - began < 10
        assert result.exit_code == 0
        assert "[output still open: a process the program started holds it]" in result.stdout
    finally:
        os.kill(pid, 9)  # this process is no subreaper (the agent is: next test)


AGENT = f"""
import json, os, sys, time
from ironcurtain.agents import builtin_sandbox
assert builtin_sandbox.adopt_orphans()
began = time.monotonic()
result = builtin_sandbox.run({ESCAPE!r}, "", "http://127.0.0.1:9/mcp")
pid = int(result.stdout.split()[0])
alive = os.path.exists(f"/proc/{{pid}}")
print(json.dumps({{"s": time.monotonic() - began, "alive": alive, "out": result.stdout}}))
"""


def test_in_the_agent_what_a_program_started_in_a_session_of_its_own_is_killed() -> None:
    done = subprocess.run(
        [sys.executable, "-c", AGENT], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["alive"] is False
    assert report["s"] < 5
    assert "still open" not in report["out"]  # killed: the output ended with it


UNDUMPABLE = """
import ctypes
from ironcurtain.agents import builtin_sandbox
libc = ctypes.CDLL(None)
before = libc.prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
assert builtin_sandbox.guard_self()
print(before, libc.prctl(3, 0, 0, 0, 0))
"""


def test_the_agent_makes_itself_undumpable() -> None:
    # What that refuses a program of the same uid (/proc/PID/environ and mem, ptrace) is shown
    # in the agent container, not as root here: tests/container/session/test_builtin.py.
    done = subprocess.run(
        [sys.executable, "-c", UNDUMPABLE], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (0, "1 0\n"), done.stderr
