"""The engine's API range, read once at start-up from GET /version over its unix socket."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ironcurtain.socketproxy.engine import EngineError, api_range, parse_range
from ironcurtain.socketproxy.rules import ApiRange


def test_the_engines_min_and_current_versions_are_read() -> None:
    body = json.dumps({"ApiVersion": "1.41", "MinAPIVersion": "1.12", "Version": "20.10"})
    assert parse_range(body.encode()) == ApiRange((1, 12), (1, 41))


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"ApiVersion": "1.41"}',
        b'{"ApiVersion": "2.0", "MinAPIVersion": "1.12"}',
        b'{"ApiVersion": "1.41x", "MinAPIVersion": "1.12"}',
        b'{"ApiVersion": 1.41, "MinAPIVersion": "1.12"}',
        b'{"ApiVersion": "1.410", "MinAPIVersion": "1.12"}',
    ],
)
def test_an_answer_without_clear_versions_is_refused(body: bytes) -> None:
    with pytest.raises(EngineError):
        parse_range(body)


@pytest.fixture
def fake_engine(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "docker.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    body = b'{"ApiVersion":"1.41","MinAPIVersion":"1.12"}'

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
            )

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield path
    finally:
        thread.join(timeout=10)
        server.close()


def test_the_range_is_asked_over_the_unix_socket(fake_engine: str) -> None:
    assert api_range(fake_engine, timeout=5) == ApiRange((1, 12), (1, 41))


def test_no_engine_at_the_socket_is_an_engine_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="cannot ask the engine"):
        api_range(str(tmp_path / "absent.sock"), timeout=1)
