"""The host's token socket: its protocol (what a compromised MITM may ask), the host file."""

from __future__ import annotations

import json
import os
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from ironcurtain.session.oauth import OAuthCredentials
from ironcurtain.session.refresh import Refresher, digest
from ironcurtain.session.tokens import ClaudeFile, TokenServer, answer

ACCESS = "sk-ant-oat01-" + "A" * 40
REFRESH = "sk-ant-ort01-" + "R" * 40


def refresher() -> Refresher:
    creds = OAuthCredentials(ACCESS, REFRESH, 4_000_000_000_000)
    grant = b'{"access_token": "sk-ant-oat01-%s", "expires_in": 60}' % (b"N" * 40)
    return Refresher(creds, grant=lambda _: grant, save=lambda _: None, clock=lambda: 1e9)


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"not json",
        b"[]",
        b'{"want": "refresh_token"}',
        b'{"want": "token", "path": "/home/user/.ssh/id_rsa"}',
        b'{"want": "refresh"}',
        b'{"want": "refresh", "refused": "short"}',
        b'{"want": "refresh", "refused": 5}',
        b'{"want": "write", "text": "x"}',
    ],
)
def test_anything_but_the_two_requests_is_an_error_and_changes_nothing(line: bytes) -> None:
    r = refresher()
    reply = answer(r, line)
    assert set(reply) == {"error"}
    assert r.counters.grants == 0


def test_a_token_request_gets_the_access_token_and_never_the_refresh_token() -> None:
    reply = answer(refresher(), b'{"want": "token"}')
    assert reply == {"access_token": ACCESS, "expires_at_ms": 4_000_000_000_000}
    assert REFRESH not in json.dumps(reply)


def test_a_refresh_request_names_the_refused_token_by_digest() -> None:
    r = refresher()
    line = json.dumps({"want": "refresh", "refused": digest(ACCESS)}).encode()
    reply = answer(r, line)
    assert reply["access_token"] == "sk-ant-oat01-" + "N" * 40
    assert r.counters.grants == 1


def test_the_socket_is_owner_only_and_answers_one_line() -> None:
    path = Path(tempfile.mkdtemp(prefix="ic-tok-")) / "token.sock"
    server = TokenServer(path, refresher()).start()
    try:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(5)
            client.connect(str(path))
            client.sendall(b'{"want": "token"}\n')
            reply = json.loads(client.makefile("rb").readline())
        assert reply["access_token"] == ACCESS
    finally:
        server.close()
    assert not path.exists()


def test_the_host_file_is_replaced_atomically_keeping_its_mode(tmp_path: Path) -> None:
    path = tmp_path / ".credentials.json"
    path.write_text("{}")
    os.chmod(path, 0o600)
    host = ClaudeFile(path)
    host.write('{"claudeAiOauth": {}}\n')
    assert host.read() == '{"claudeAiOauth": {}}\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [".credentials.json"]
    assert ClaudeFile(tmp_path / "absent").read() is None
