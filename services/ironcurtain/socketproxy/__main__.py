"""Container entry point: render haproxy.cfg from the environment, then exec HAProxy.

A configuration the proxy will not serve stops it here, with the reason, before anything listens.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .engine import EngineError, api_range
from .render import render
from .rules import omitted
from .settings import SettingsError, from_environ

EXIT_CONFIG = 64
EXIT_ENGINE = 69  # EX_UNAVAILABLE: the engine did not say which API versions it speaks


def main() -> int:
    target = Path(os.environ.get("SOCKETPROXY_CONFIG", "/tmp/haproxy.cfg"))  # noqa: S108 (tmpfs)
    try:
        settings = from_environ(os.environ)
    except SettingsError as exc:
        print(f"socket-proxy: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        engine = api_range(settings.socket_path)
    except EngineError as exc:
        print(f"socket-proxy: {exc}", file=sys.stderr)
        return EXIT_ENGINE
    for name in omitted(settings, engine):
        print(
            f"socket-proxy: not serving {name}: the engine's API {engine.high} is below its floor",
            file=sys.stderr,
        )
    try:
        target.write_text(render(settings, engine))
    except OSError as exc:
        print(
            f"socket-proxy: cannot write {target}: {exc.strerror} (mount a tmpfs)", file=sys.stderr
        )
        return EXIT_CONFIG
    print(
        f"socket-proxy: serving {', '.join(sorted(settings.switches)) or 'nothing'}; "
        f"visible containers: {', '.join(settings.visible) or 'none'}; "
        f"API {engine.low[0]}.{engine.low[1]}-{engine.high[0]}.{engine.high[1]}",
        file=sys.stderr,
        flush=True,
    )
    os.execvp("haproxy", ["haproxy", "-db", "-f", str(target)])  # noqa: S606 (fixed argv)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
