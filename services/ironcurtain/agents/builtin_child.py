"""The interpreter of one `execute_code`: `python3 -I -m ironcurtain.agents.builtin_child DIR`.

DIR (made by builtin_sandbox) holds `stubs.py` and `program.py`; the limits, the status pipe's fd
and the door's URL follow it on the command line. Only cheap modules load before the program
runs (the MCP client loads with the first tool call): a program's interpreter starts in tens of
milliseconds. The child caps its own address space and CPU time (soft and hard limits alike, so
the program cannot raise them), defines the stubs, and runs the program as `__main__`. Each tool
call writes `[` before and `]` after on the status pipe, so the parent does not count time spent
waiting for a tool (or for a human deciding an escalation) against the program's time limit.
"""

from __future__ import annotations

import os
import resource
import sys
from typing import Any

from .builtin_errors import NotApproved, PolicyDenied, ToolError


def _read(folder: str, name: str) -> str:
    with open(os.path.join(folder, name), encoding="utf-8") as file:  # pathlib costs 20 ms here
        return file.read()


def _limit(which: int, value: int) -> None:
    resource.setrlimit(which, (value, value))


def main(folder: str, memory_bytes: int, cpu_s: int, status: int, mcp_url: str) -> int:
    _limit(resource.RLIMIT_AS, memory_bytes)
    _limit(resource.RLIMIT_CPU, cpu_s)
    os.set_inheritable(status, False)  # the program's own subprocesses do not get it
    client: Any = None

    def call_tool(name: str, arguments: dict[str, Any]) -> str:
        nonlocal client
        from .builtin_mcp import McpClient, raise_for  # with the first call: startup stays lean

        if client is None:
            client = McpClient(mcp_url)
        sent = {k: v for k, v in arguments.items() if v is not None}
        os.write(status, b"[")
        try:
            result = client.call(name, sent)
        finally:
            os.write(status, b"]")
        return raise_for(name, result)

    namespace: dict[str, Any] = {
        "__name__": "__main__",
        "__builtins__": __builtins__,
        "call_tool": call_tool,
        "ToolError": ToolError,
        "PolicyDenied": PolicyDenied,
        "NotApproved": NotApproved,
    }
    exec(compile(_read(folder, "stubs.py"), "<stubs>", "exec"), namespace)  # noqa: S102
    program = _read(folder, "program.py")
    try:  # compiling is the program's too: a syntax error or a NUL byte is its traceback
        exec(compile(program, "<program>", "exec"), namespace)  # noqa: S102
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:  # the program's failure: its traceback, without our frames
        import linecache
        import traceback

        # Tracebacks quote the program's lines, as they would from a file.
        linecache.cache["<program>"] = (len(program), None, program.splitlines(True), "<program>")
        frames = traceback.extract_tb(exc.__traceback__)
        shown = [f for f in frames if f.filename in ("<program>", "<stubs>")]
        sys.stderr.write("Traceback (most recent call last):\n")
        sys.stderr.write("".join(traceback.format_list(shown)))
        sys.stderr.write("".join(traceback.format_exception_only(exc)))
        return 1
    return 0


if __name__ == "__main__":
    folder, memory, cpu, status_fd, url = sys.argv[1:6]
    sys.exit(main(folder, int(memory), int(cpu), int(status_fd), url))
