"""`python3 -m ironcurtain.registrar.health`: healthy when /healthz answers 200 over TLS checked
against the team CA and the team host name (the container's health check)."""

from __future__ import annotations

import os
import socket
import sys

from ..escalation import tls


def main() -> int:
    host = os.environ["IRONCURTAIN_TEAM_HOST"]
    context = tls.context(os.environ["IRONCURTAIN_REDIS_CA_FILE"])
    raw = socket.create_connection(("127.0.0.1", 8443), timeout=3)
    with context.wrap_socket(raw, server_hostname=host) as sock:
        sock.sendall(f"GET /healthz HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        status = sock.recv(64).split(b"\r\n", 1)[0]
    return 0 if status.split()[1:2] == [b"200"] else 1


if __name__ == "__main__":
    sys.exit(main())
