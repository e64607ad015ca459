"""Ask the engine, once at start-up, which API versions it speaks (GET /version over its socket).

The rules admit no version above the engine's own: a client's `/v1.99` is refused rather than
answered by whatever the engine makes of it.
"""

from __future__ import annotations

import http.client
import json
import re
import socket

from .rules import ApiRange

_VERSION = re.compile(r"1\.([0-9]{1,2})")


class EngineError(RuntimeError):
    """The engine did not say which API versions it speaks; the proxy refuses to start."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("docker", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def parse_version(raw: object) -> tuple[int, int]:
    if not isinstance(raw, str) or not (match := _VERSION.fullmatch(raw)):
        raise EngineError(f"the engine reports API version {raw!r}, not 1.NN")
    return (1, int(match.group(1)))


def parse_range(body: bytes) -> ApiRange:
    try:
        answer = json.loads(body)
    except ValueError as exc:
        raise EngineError("the engine's /version answer is not JSON") from exc
    if not isinstance(answer, dict):
        raise EngineError("the engine's /version answer is not an object")
    return ApiRange(
        low=parse_version(answer.get("MinAPIVersion")), high=parse_version(answer.get("ApiVersion"))
    )


def api_range(socket_path: str, timeout: float = 10.0) -> ApiRange:
    conn = _UnixConnection(socket_path, timeout)
    try:
        conn.request("GET", "/version")
        response = conn.getresponse()
        body = response.read()
    except OSError as exc:
        raise EngineError(f"cannot ask the engine at {socket_path}: {exc}") from exc
    finally:
        conn.close()
    if response.status != 200:
        raise EngineError(f"the engine answered /version with {response.status}")
    return parse_range(body)
