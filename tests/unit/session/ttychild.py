"""A small program for the relay tests: it runs on the relay's pty the way `docker exec` would
(its terminal in raw mode) and answers commands that end in CR.

  payload N   writes bytes 0..255, N times, then "\r\nend\r\n"
  echo K      reads K more bytes, writes "got <hex>\r\n"
  partial     writes half an escape sequence ("\x1b[3"); `finish` writes the rest
  modes       turns on what a full-screen interface does (alternate screen, mouse, bracketed
              paste, hidden cursor), writes "modes on\r\n", and leaves them on
  exit N      exits with N
On SIGWINCH it writes "size ROWSxCOLS\r\n".
"""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import sys
import termios
import tty


def out(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


def size() -> str:
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))
    return f"{rows}x{cols}"


def read_exactly(count: int, buffered: bytearray) -> bytes:
    while len(buffered) < count:
        buffered += os.read(0, 4096)
    taken = bytes(buffered[:count])
    del buffered[:count]
    return taken


def main() -> int:
    tty.setraw(0)
    signal.signal(signal.SIGWINCH, lambda s, f: out(f"size {size()}\r\n".encode()))
    out(f"ready {os.getpid()} {size()}\r\n".encode())
    buffered = bytearray()
    while True:
        while b"\r" not in buffered:
            data = os.read(0, 4096)
            if not data:
                return 0
            buffered += data
        line, _, rest = bytes(buffered).partition(b"\r")
        buffered[:] = rest
        command, _, arg = line.decode().partition(" ")
        if command == "payload":
            out(bytes(range(256)) * int(arg) + b"\r\nend\r\n")
        elif command == "echo":
            out(f"got {read_exactly(int(arg), buffered).hex()}\r\n".encode())
        elif command == "partial":
            out(b"\x1b[3")
        elif command == "modes":
            out(b"\x1b[?1049h\x1b[?1000;1006h\x1b[?2004h\x1b[?25lmodes on\r\n")
        elif command == "finish":
            out(b"1mred\x1b[0m\r\n")
        elif command == "exit":
            return int(arg)


if __name__ == "__main__":
    sys.exit(main())
