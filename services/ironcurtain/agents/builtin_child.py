"""The interpreter of one `execute_code`: `python3 -I -m ironcurtain.agents.builtin_child DIR`.

DIR (made by builtin_sandbox) holds `config.json`, `stubs.py` and `program.py`. The child caps its
own address space and CPU time (soft and hard limits alike, so the program cannot raise them),
defines the stubs, and runs the program as `__main__`. Each tool call writes `[` before and `]`
after on the status pipe, so the parent does not count time spent waiting for a tool (or for a
human deciding an escalation) against the program's time limit.
"""

from __future__ import annotations

import json
import linecache
import os
import resource
import sys
import traceback
from pathlib import Path
from typing import Any


def _limit(which: int, value: int) -> None:
    resource.setrlimit(which, (value, value))


def main(folder: Path) -> int:
    config = json.loads((folder / "config.json").read_text())
    _limit(resource.RLIMIT_AS, int(config["memory_bytes"]))
    _limit(resource.RLIMIT_CPU, int(config["cpu_s"]))
    status = int(config["status_fd"])
    os.set_inheritable(status, False)  # the program's own subprocesses do not get it

    from .builtin_mcp import McpClient, NotApproved, PolicyDenied, ToolError, raise_for

    client = McpClient(config["mcp_url"])

    def call_tool(name: str, arguments: dict[str, Any]) -> str:
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
    exec(compile((folder / "stubs.py").read_text(), "<stubs>", "exec"), namespace)  # noqa: S102
    program = (folder / "program.py").read_text()
    # Tracebacks quote the program's lines, as they would from a file.
    linecache.cache["<program>"] = (len(program), None, program.splitlines(True), "<program>")
    try:  # compiling is the program's too: a syntax error or a NUL byte is its traceback
        exec(compile(program, "<program>", "exec"), namespace)  # noqa: S102
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:  # the program's failure: its traceback, without our frames
        frames = traceback.extract_tb(exc.__traceback__)
        shown = [f for f in frames if f.filename in ("<program>", "<stubs>")]
        sys.stderr.write("Traceback (most recent call last):\n")
        sys.stderr.write("".join(traceback.format_list(shown)))
        sys.stderr.write("".join(traceback.format_exception_only(exc)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
