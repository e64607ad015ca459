"""The interactive relay's cost, against a baseline measured in the same run.

- throughput: a child writes 16 MiB of terminal-like output (text, colour escape sequences,
  UTF-8) on a pty; read directly from that pty (baseline) versus through a relay process
  (`session.terminal.Relay`: its own pty, the splicer, one more hop) on a pty this benchmark owns;
- keystroke round trip: one byte written to the terminal and echoed back by a raw-mode child,
  directly versus through the relay (p50/p99 over a few hundred keystrokes).
"""

from __future__ import annotations

import os
import select
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ironcurtain.session.terminal import set_window_size, with_controlling_tty

SERVICES = Path(__file__).resolve().parents[1] / "services"
MIB = 16
KEYSTROKES = 300

WRITER = f"""
import os, sys, tty
tty.setraw(0)
block = ("\\x1b[32mok\\x1b[0m caf\\u00e9 line of output \\u2014 " * 40 + "\\r\\n").encode()
left = {MIB} * 1024 * 1024
while left > 0:
    chunk = block[: min(len(block), left)]
    view = memoryview(chunk)
    while view:
        view = view[os.write(1, view):]
    left -= len(chunk)
"""

ECHO = """
import os, tty
tty.setraw(0)
os.write(1, b"R")
while True:
    data = os.read(0, 1)
    if not data or data == b"q":
        break
    os.write(1, data)
"""

RELAY = (
    "import sys\n"
    "from ironcurtain.session.terminal import Relay\n"
    "sys.exit(Relay().run(sys.argv[1:]))\n"
)


def _spawn(child: str, relayed: bool) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = os.openpty()
    set_window_size(master, 50, 200)
    argv = [sys.executable, "-c", child]
    if relayed:
        argv = [sys.executable, "-c", RELAY, *argv]
    proc = subprocess.Popen(
        with_controlling_tty(argv),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(SERVICES)},
    )
    os.close(slave)
    return proc, master


def _read_some(master: int, timeout_s: float = 10.0) -> bytes:
    ready, _, _ = select.select([master], [], [], timeout_s)
    if not ready:
        raise TimeoutError("no output")
    try:
        return os.read(master, 1 << 16)
    except OSError:
        return b""


def throughput_mib_s(relayed: bool) -> float:
    proc, master = _spawn(WRITER, relayed)
    got, began = 0, 0.0
    try:
        while got < MIB * 1024 * 1024:
            data = _read_some(master)
            if not data:
                break
            if not began:
                began = time.perf_counter()
            got += len(data)
        took = time.perf_counter() - began
        proc.wait(timeout=30)
    finally:
        os.close(master)
    if got < MIB * 1024 * 1024:
        raise RuntimeError(f"only {got} bytes arrived")
    return got / (1024 * 1024) / took


def round_trips_ms(relayed: bool) -> list[float]:
    proc, master = _spawn(ECHO, relayed)
    times = []
    try:
        seen = b""
        while b"R" not in seen:
            seen += _read_some(master)
        for _ in range(KEYSTROKES):
            began = time.perf_counter()
            os.write(master, b"x")
            while b"x" not in _read_some(master):
                pass
            times.append((time.perf_counter() - began) * 1000)
        os.write(master, b"q")
        proc.wait(timeout=30)
    finally:
        os.close(master)
    return times


def run() -> dict[str, float]:
    direct_tp, relay_tp = throughput_mib_s(False), throughput_mib_s(True)
    direct_rt, relay_rt = round_trips_ms(False), round_trips_ms(True)

    def p(values: list[float], q: int) -> float:
        return round(statistics.quantiles(values, n=100)[q - 1], 3)

    return {
        "throughput_direct_mib_s": round(direct_tp, 1),
        "throughput_relay_mib_s": round(relay_tp, 1),
        "keystroke_direct_p50_ms": p(direct_rt, 50),
        "keystroke_relay_p50_ms": p(relay_rt, 50),
        "keystroke_relay_p99_ms": p(relay_rt, 99),
        "keystroke_added_p50_ms": round(p(relay_rt, 50) - p(direct_rt, 50), 3),
    }


if __name__ == "__main__":
    print(run())
