"""Several Python processes released at the same instant: how tests provoke the races of several
`make up` starting together on a fresh machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SERVICES = str(Path(__file__).resolve().parents[2] / "services")


def race(setup: str, act: str, count: int = 8, timeout_s: float = 60) -> list[object]:
    """Run `setup` (imports) in `count` fresh interpreters; once every one is ready, let them all
    run `act` together. `act` sets `result` (JSON-able). Returns each process's result, or the
    text of the exception it raised."""
    program = "\n".join(
        [
            "import json, sys",
            textwrap.dedent(setup),
            "print('ready', flush=True)",
            "sys.stdin.readline()",  # the starting gun
            "try:",
            textwrap.indent(textwrap.dedent(act), "    "),
            "except Exception as exc:",
            "    result = f'{type(exc).__name__}: {exc}'",
            "print(json.dumps(result), flush=True)",
        ]
    )
    env = {**os.environ, "PYTHONPATH": SERVICES}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", program],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(count)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, _ = proc.communicate(timeout=timeout_s)
            assert proc.returncode == 0, out
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
