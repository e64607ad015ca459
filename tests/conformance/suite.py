"""Run the MCP conformance suite's server scenarios against a URL; read what each scenario's
checks said. The suite and its Node live in the prefix scripts/conformance.sh fills."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[2]
PREFIX = Path(os.environ.get("IRONCURTAIN_CONFORMANCE_PREFIX", REPO / ".cache" / "conformance"))
BIN = PREFIX / "node_modules" / ".bin"
SUITE_S = 90.0
_STAMP = re.compile(r"-\d{4}-\d\d-\d\dT[\d-]+Z$")


@dataclass(frozen=True)
class Scenario:
    name: str
    checks: tuple[dict[str, Any], ...]

    @property
    def failures(self) -> list[str]:
        return [
            f"{c.get('id')}: {c.get('errorMessage', c.get('status'))}"
            for c in self.checks
            if c.get("status") == "FAILURE"
        ]

    @property
    def passed(self) -> bool:
        return bool(self.checks) and not self.failures


def run(url: str, out: Path, *scenarios: str) -> dict[str, Scenario]:
    """Every active server scenario (or those named) against `url`, by name."""
    if not (BIN / "conformance").exists():
        raise RuntimeError(f"no conformance suite in {PREFIX}: run scripts/conformance.sh")
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    runs = [list(scenarios)] if not scenarios else [[s] for s in scenarios]
    for names in runs:
        extra = ["--scenario", names[0]] if names else []
        command = [str(BIN / "conformance"), "server", "--url", url, "-o", str(out), *extra]
        # The suite exits 1 when a check fails: the checks themselves are read below.
        subprocess.run(command, env=env, capture_output=True, timeout=SUITE_S, check=False)
    found: dict[str, Scenario] = {}
    for folder in sorted(out.iterdir()):
        checks = folder / "checks.json"
        if folder.name.startswith("server-") and checks.exists():
            name = _STAMP.sub("", folder.name.removeprefix("server-"))
            found[name] = Scenario(name, tuple(json.loads(checks.read_text())))
    return found


@contextmanager
def started(command: list[str], line: str, timeout_s: float = 30.0) -> Iterator[str]:
    """A server process that prints `line URL` once it listens: the URL; stopped on exit.
    (A process, not a thread: pytest's warnings-as-errors must not reach the server's code.)"""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert process.stdout is not None
        url: list[str] = []
        reader = threading.Thread(
            target=lambda: url.extend(
                next((x for x in process.stdout if x.startswith(line)), "").split()[-1:]
            ),
            daemon=True,
        )
        reader.start()
        reader.join(timeout_s)  # a deadline on the readiness line, not a sleep
        assert url, f"{command[:3]} printed no {line!r} within {timeout_s:g} s"
        yield url[0]
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
