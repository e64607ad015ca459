"""The scripted agent's interactive mode (the REPL the interactive-session tests drive), on the
relay's pty as in a session; without Docker, so without MCP calls (the container test has them)."""

from __future__ import annotations

import sys

from ..session.ptys import relay_host

REPL = (sys.executable, "-m", "ironcurtain.agents.scripted_agent", "--interactive")


def test_the_repl_prompts_reports_its_size_and_resizes_and_exits_with_the_code_asked() -> None:
    with relay_host(rows=24, cols=80, child=REPL) as host:
        host.expect(rb"scripted> ")
        host.send(b"size\r")
        host.expect(rb"size 24x80\r\n")
        host.send_resize(30, 100)
        host.expect(rb"window 30x100\r\n")
        host.send(b"nonsense\r")
        host.expect(rb"commands: size \| call TOOL JSON \| exit")
        host.send(b"exit 3\r")
        assert host.wait() == 3
