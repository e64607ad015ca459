"""Run the socket proxy image's pure Lua modules with Debian's lua5.3 — HAProxy 2.6's Lua.

One interpreter process serves many calls (driver.lua frames them), so Hypothesis can fuzz the
scanner and the query checker quickly. `make test-unit` installs lua5.3 when it is missing
(scripts/lua.sh).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[3]
MODULES = ROOT / "images" / "socket-proxy"
DRIVER = Path(__file__).with_name("driver.lua")
INTERPRETER = "lua5.3"  # the Lua HAProxy 2.6 is built with in Debian 12


class LuaError(RuntimeError):
    """The Lua function raised."""


class Lua:
    def __init__(self) -> None:
        binary = shutil.which(INTERPRETER)
        if binary is None:
            raise RuntimeError(f"{INTERPRETER} is missing: run `make lua` (scripts/lua.sh)")
        self._process = subprocess.Popen(
            [binary, str(DRIVER), str(MODULES)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    def call(self, name: str, *args: str | bytes) -> tuple[bytes | None, bytes | None]:
        stdin, stdout = self._pipes()
        fields = [name.encode(), str(len(args)).encode()]
        fields += [a.encode() if isinstance(a, str) else a for a in args]
        stdin.write(b"".join(b"%d\n%s" % (len(f), f) for f in fields))
        stdin.flush()
        status, first, second = (_field(stdout) for _ in range(3))
        if status != b"ok":
            raise LuaError((first or b"").decode(errors="replace"))
        return first, second

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        return self._process.stdin, self._process.stdout

    def close(self) -> None:
        stdin, stdout = self._pipes()
        stdin.close()
        self._process.wait(timeout=10)
        stdout.close()


def _field(stdout: IO[bytes]) -> bytes | None:
    size = int(stdout.readline())
    return None if size < 0 else stdout.read(size)
