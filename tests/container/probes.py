"""Probes run inside containers, and small servers for them to reach. Test helpers, no fixtures.

A probe prints `open <body>` when it reached a server and got an answer, or `blocked <why>` when
the connection (or name lookup) failed. Servers answer every GET with their marker, so a probe
that gets through proves *which* server it reached.
"""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import docker.models.containers

PROBE = r"""
import socket, sys
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    address = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)[0][4]
    conn = socket.socket(family, socket.SOCK_STREAM)
    conn.settimeout(2)
    conn.connect(address)
except OSError as exc:
    print(f"blocked {type(exc).__name__}: {exc}")
    sys.exit(0)
# Connected: reached, whatever the server does next (a TLS-only server resets an HTTP request).
data = b""
try:
    conn.sendall(f"GET {path} HTTP/1.0\r\nHost: probe\r\n\r\n".encode())
    while chunk := conn.recv(4096):
        data += chunk
except OSError as exc:
    data += f"(connected, then {type(exc).__name__}: {exc})".encode()
print("open " + data.decode(errors="replace").split("\r\n\r\n", 1)[-1])
"""

RESOLVE = r"""
import socket, sys
try:
    print("resolved " + socket.getaddrinfo(sys.argv[1], 80, socket.AF_INET)[0][4][0])
except OSError as exc:
    print(f"failed {type(exc).__name__}: {exc}")
"""

# A resolver that answers every A query with one address and logs each question: the stand-in for
# an outside DNS server. Nobody ever connects to the address it hands out.
DNS_SERVER = r"""
import socket, struct, sys
address = socket.inet_aton(sys.argv[1])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", 53))
print("ready", flush=True)
while True:
    data, peer = sock.recvfrom(512)
    if len(data) < 17:
        continue
    i, labels = 12, []
    while data[i]:
        labels.append(data[i + 1 : i + 1 + data[i]].decode(errors="replace"))
        i += data[i] + 1
    qtype = struct.unpack(">H", data[i + 1 : i + 3])[0]
    print("query", ".".join(labels), qtype, flush=True)
    answers = b"\x00\x01" if qtype == 1 else b"\x00\x00"
    reply = data[:2] + b"\x81\x80" + data[4:6] + answers + b"\x00\x00\x00\x00" + data[12 : i + 5]
    if qtype == 1:
        reply += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + address
    sock.sendto(reply, peer)
"""

SERVER = r"""
import http.server, sys
marker = sys.argv[2].encode()
class Marker(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(marker)))
        self.end_headers()
        self.wfile.write(marker)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Marker).serve_forever()
"""


def server_command(port: int, marker: str) -> list[str]:
    return ["python3", "-c", SERVER, str(port), marker]


def server_healthcheck(port: int) -> dict[str, object]:
    probe = f"import urllib.request as u; u.urlopen('http://127.0.0.1:{port}/', timeout=1)"
    return {
        "test": ["CMD", "python3", "-c", probe],
        "interval": 200_000_000,
        "timeout": 1_000_000_000,
        "retries": 50,
        "start_period": 0,
    }


@dataclass(frozen=True)
class Outcome:
    opened: bool
    detail: str

    def __str__(self) -> str:
        return ("open " if self.opened else "blocked ") + self.detail


def probe(
    container: docker.models.containers.Container, host: str, port: int, path: str = "/"
) -> Outcome:
    """Connect from inside CONTAINER to HOST:PORT and GET PATH."""
    # A name the embedded resolver does not know gets no answer: glibc's default 2x5 s wait is
    # cut to 1 s (the outcome is the same, only sooner).
    result = container.exec_run(
        ["python3", "-c", PROBE, host, str(port), path],
        environment={"RES_OPTIONS": "timeout:1 attempts:1"},
    )
    output = result.output.decode(errors="replace").strip()
    assert result.exit_code == 0, f"the probe itself failed: {output}"
    kind, _, detail = output.partition(" ")
    assert kind in ("open", "blocked"), output
    return Outcome(kind == "open", detail)


def resolve(container: docker.models.containers.Container, name: str) -> str | None:
    """The IPv4 address NAME resolves to inside CONTAINER, or None."""
    result = container.exec_run(
        ["python3", "-c", RESOLVE, name], environment={"RES_OPTIONS": "timeout:1 attempts:1"}
    )
    output = result.output.decode(errors="replace").strip()
    assert result.exit_code == 0, f"the lookup itself failed: {output}"
    kind, _, detail = output.partition(" ")
    assert kind in ("resolved", "failed"), output
    return detail if kind == "resolved" else None


@contextmanager
def host_server(marker: str) -> Iterator[int]:
    """An HTTP server on this machine bound to every address (IPv4 and IPv6): the host service
    that a container must not reach. Yields its port."""

    class Marker(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = marker.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    class DualStack(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6

        def server_bind(self) -> None:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            super().server_bind()

    server = DualStack(("::", 0), Marker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def host_ipv4_of(interface: str) -> list[str]:
    """This machine's IPv4 addresses on INTERFACE (none when it has none or does not exist)."""
    done = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "dev", interface], capture_output=True, text=True
    )
    return [line.split()[3].split("/")[0] for line in done.stdout.splitlines()]


def link_local_of(interface: str) -> str | None:
    """This machine's IPv6 link-local address on INTERFACE (from /proc/net/if_inet6), if any."""
    with open("/proc/net/if_inet6") as table:
        for line in table:
            fields = line.split()
            if fields[-1] == interface and fields[0].startswith("fe80"):
                raw = fields[0]
                return ":".join(raw[i : i + 4] for i in range(0, 32, 4))
    return None


DOCKER_DNS = "0B00007F"  # 127.0.0.11, where Docker's embedded resolver listens in every container


def listening_ports(container: docker.models.containers.Container) -> set[int]:
    """TCP ports in LISTEN state inside CONTAINER's network namespace (IPv4 and IPv6), except
    Docker's embedded DNS resolver."""
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        result = container.exec_run(["cat", table])
        if result.exit_code != 0:
            continue
        for line in result.output.decode().splitlines()[1:]:
            fields = line.split()
            address, port = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and address != DOCKER_DNS:  # 0A: TCP_LISTEN
                ports.add(int(port, 16))
    return ports


def bridge_host(client: docker.DockerClient) -> str:
    """This machine's address on Docker's default bridge, as containers there reach it: the
    network's gateway when the engine reports one (some engines leave it out of the default
    bridge's IPAM), else docker0's own address."""
    config = client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    if config.get("Gateway"):
        return str(config["Gateway"])
    (address, *_) = host_ipv4_of("docker0")
    return address
