"""The team Redis speaks TLS only, and every client checks the team CA and the host name.

Against our real Redis image (the `team_redis` fixture: its certificate names 127.0.0.1 and
`redis`, signed by a CA of its own). Attacks: a client trusting another CA or the system store,
a client dialling a name the certificate does not carry, plaintext on the TLS port (with the
admin's real password), all refused. Control: the team CA and the right name get in.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
import redis

from ironcurtain.escalation import acl
from ironcurtain.escalation.channel import TLSConnection, connect
from ironcurtain.shared.pki import TeamTLS

from .redisserver import RedisServer


def _refused_by_tls(client: redis.Redis) -> str:
    with pytest.raises(redis.exceptions.ConnectionError) as raised:
        client.ping()
    client.close()
    return str(raised.value)


def test_control_a_client_with_the_team_ca_and_the_right_name_gets_in(
    team_redis: RedisServer,
) -> None:
    client = connect(team_redis.url, team_redis.admin_file, ca_file=team_redis.ca_file)
    assert client.ping() is True
    connection = client.connection_pool.get_connection()
    version = connection._sock.version()  # type: ignore[union-attr]
    client.connection_pool.release(connection)
    assert version in ("TLSv1.2", "TLSv1.3")
    client.close()


def test_a_client_without_the_team_ca_is_refused(team_redis: RedisServer, tmp_path: Path) -> None:
    other = TeamTLS(tmp_path / "other")
    other.ensure([], say=lambda _: None)  # another team's CA: same names, wrong signer
    client = connect(team_redis.url, team_redis.admin_file, ca_file=other.ca)
    assert "certificate verify failed" in _refused_by_tls(client)
    # The system's store does not know the team CA either.
    pool = redis.ConnectionPool(
        connection_class=TLSConnection,
        tls_context=ssl.create_default_context(),
        tls_name="127.0.0.1",
        host="127.0.0.1",
        port=team_redis.port,
        username=acl.ADMIN,
        password=team_redis.credentials[acl.ADMIN].password,
        socket_timeout=5,
    )
    assert "certificate verify failed" in _refused_by_tls(redis.Redis.from_pool(pool))


@pytest.mark.parametrize("name", ["localhost", "team.example", "redis.evil.example"])
def test_a_client_dialling_a_name_the_certificate_does_not_carry_is_refused(
    team_redis: RedisServer, name: str
) -> None:
    url = f"rediss://{name}:{team_redis.port}/0"
    client = connect(url, team_redis.admin_file, ca_file=team_redis.ca_file, address="127.0.0.1")
    message = _refused_by_tls(client)
    assert "certificate verify failed" in message
    assert "Hostname mismatch" in message or "IP address mismatch" in message


def test_a_plaintext_connection_to_the_tls_port_is_refused(team_redis: RedisServer) -> None:
    """The admin's real password in the clear gets nothing: there is no plaintext port."""
    admin = team_redis.credentials[acl.ADMIN]
    plain = redis.Redis(
        host="127.0.0.1",
        port=team_redis.port,
        username=admin.user,
        password=admin.password,
        socket_timeout=5,
    )
    with pytest.raises(redis.exceptions.ConnectionError):
        plain.ping()
    plain.close()
    with socket.create_connection(("127.0.0.1", team_redis.port), timeout=5) as raw:
        raw.sendall(b"PING\r\n")
        answer = raw.recv(64)
    assert b"PONG" not in answer  # closed, never a Redis reply
    assert not answer.startswith(b"-")


def test_the_tls_checks_cannot_be_turned_off_from_the_url(team_redis: RedisServer) -> None:
    for url in (
        f"redis://127.0.0.1:{team_redis.port}/0",
        f"rediss://127.0.0.1:{team_redis.port}/0?ssl_cert_reqs=none",
        f"rediss://127.0.0.1:{team_redis.port}/0?ssl_check_hostname=false",
    ):
        with pytest.raises(ValueError, match=r"plaintext Redis|no user, password or options"):
            connect(url, team_redis.admin_file, ca_file=team_redis.ca_file)
