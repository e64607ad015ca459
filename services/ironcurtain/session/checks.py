"""Before the agent gets its task: prove from inside its container that the doors answer and that
nothing else does. The probe is stdlib Python run in the agent (every agent image has python3);
a canary listener that the run opens on the host is probed via every gateway address.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import hardening

# Runs inside the agent: argv[1] is JSON {"doors": {name: [host, port, request, expect]},
# "canaries": [[address, port], ...], "wait_s": S, "canary_s": S}; prints one JSON line
# {"doors": {...}, "reached": [...]}. With wait_s, a door that does not answer yet is asked again
# (every 0.1 s) until it answers as expected or wait_s has passed: how a starting session waits
# for its doors. A canary is tried for canary_s (default 1.5 s): an address outside the agent's
# subnet fails at once (no route), its own subnet's gateway waits for ARP, which the host would
# answer within a millisecond if it held the address.
PROBE = r"""
import json, socket, sys, threading, time
spec = json.loads(sys.argv[1])
doors, reached = {}, []
until = time.monotonic() + spec.get("wait_s", 0)
def door(name, host, port, request, expect):
    while True:
        try:
            with socket.create_connection((host, port), 3) as s:
                s.settimeout(3)
                s.sendall(request.encode())
                got = s.recv(256).decode("latin-1")
            doors[name] = got.startswith(expect) and "ok" or "answered %r" % got[:60]
        except OSError as exc:
            doors[name] = "unreachable: %s" % exc
        if doors[name] == "ok" or time.monotonic() >= until:
            return
        time.sleep(0.1)  # polling a port that is not listening yet, with a deadline
def canary(address, port):
    try:
        with socket.create_connection((address, port), spec.get("canary_s", 1.5)):
            reached.append("%s:%d" % (address, port))
    except OSError:
        pass
threads = [threading.Thread(target=door, args=(n, *v)) for n, v in spec["doors"].items()]
threads += [threading.Thread(target=canary, args=tuple(c)) for c in spec["canaries"]]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"doors": doors, "reached": reached}))
"""


def probe_argv(spec: Mapping[str, Any]) -> list[str]:
    """The probe as a command for the agent container. Isolated mode (-I: no current directory,
    user site or PYTHON* variables on the import path) and no site (-S): the working directory is
    the workspace, where a `socket.py` or `json.py` the agent left would otherwise be imported by
    the very check that decides whether the session is isolated."""
    return ["python3", "-I", "-S", "-c", PROBE, json.dumps(spec)]


def startup_program(spec: Mapping[str, Any]) -> str:
    """The agent container's first process (compose.yaml runs it with -I -S): the probe at once,
    so its canary wait passes while compose still starts the doors and the probe waits for them,
    its line flushed to the container log, then the idle `sleep infinity` the task is run beside.
    Nothing of the agent's has run yet; the workspace is not on its import path."""
    head = f"import sys\nsys.argv[1:] = [{json.dumps(spec)!r}]\n"
    tail = "\nsys.stdout.flush()\nimport os\nos.execvp('sleep', ['sleep', 'infinity'])\n"
    return head + PROBE + tail


STARTUP_FILE = "startup.py"  # in the session's agent folder (read-only in the agent)


def door_requests(
    mcp_port: int, mitm_port: int, docker_port: int, llm_host: str
) -> dict[str, list[Any]]:
    """Each door and a request it must answer as expected (the control probes). `llm_host` is a
    host of the agent's own provider: the only hosts the MITM admits are its providers'."""
    return {
        "mcp": [
            "sidecar",
            mcp_port,
            f"GET /mcp HTTP/1.1\r\nHost: sidecar:{mcp_port}\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 ",
        ],
        "mitm": [
            "sidecar",
            mitm_port,
            f"CONNECT {llm_host}:443 HTTP/1.1\r\nHost: {llm_host}:443\r\n\r\n",
            "HTTP/1.1 200",
        ],
        "docker": [
            "sidecar",
            docker_port,
            "GET /_ping HTTP/1.1\r\nHost: sidecar\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 200",
        ],
    }


class IsolationError(RuntimeError):
    """The session is not isolated as it must be: it is aborted before the agent gets its task."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    doors: Mapping[str, str]  # name -> "ok" or what went wrong
    reached: tuple[str, ...]  # canary addresses the agent reached (must be none)
    listener_hits: tuple[str, ...]  # peers the host canary saw (must be none)

    def problems(self) -> list[str]:
        found = [
            f"door {name} does not answer from the agent: {state}"
            for name, state in sorted(self.doors.items())
            if state != "ok"
        ]
        found += [f"the agent reached the host canary at {a}" for a in self.reached]
        found += [f"the host canary got a connection from {p}" for p in self.listener_hits]
        return found


def parse_probe(output: str, listener_hits: Iterable[str]) -> ProbeResult:
    """The probe's last JSON line; anything else is a failed probe (fail closed)."""
    for line in reversed(output.strip().splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("doors"), dict):
            return ProbeResult(
                doors={str(k): str(v) for k, v in doc["doors"].items()},
                reached=tuple(str(r) for r in doc.get("reached", [])),
                listener_hits=tuple(listener_hits),
            )
    raise IsolationError(f"the isolation probe printed no result: {output[-300:]!r}")


def check_hardening(attrs: Mapping[str, object], user: str | None = None) -> None:
    found = hardening.violations(attrs, user)
    if found:
        raise IsolationError("the agent container is not hardened: " + "; ".join(found))


class Canary:
    """A TCP listener on every host address (0.0.0.0): any connection means isolation failed."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("0.0.0.0", 0))  # noqa: S104 - the point: a host service on every address
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.hits: list[str] = []
        self.hit = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="canary")
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.hits.append(f"{peer[0]}:{peer[1]}")
            self.hit.set()
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()

    def __enter__(self) -> Canary:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
