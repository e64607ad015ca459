"""Runs a Relay the way `ironcurtain run` does, for the relay tests: on the terminal it was given
as stdin/stdout (which is its controlling terminal), with notices read line by line from a pipe.

  python relayhost.py NOTICE_FD HOLD_S CHILD_ARGV...
Exits with the relay's result; 143 after a Hangup (SIGTERM, SIGHUP).
"""

from __future__ import annotations

import os
import sys
import threading

from ironcurtain.session.terminal import Hangup, Relay


def main(argv: list[str]) -> int:
    relay = Relay(stdin=0, stdout=1, hold_s=float(argv[1]))

    def notices() -> None:
        with os.fdopen(int(argv[0]), "r") as lines:
            for line in lines:
                relay.notice(line.rstrip("\n"))

    threading.Thread(target=notices, daemon=True).start()
    try:
        return relay.run(argv[2:])
    except Hangup:
        return 143


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
