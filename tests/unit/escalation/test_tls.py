"""Only `rediss://HOST[:PORT][/DB]` is a Redis URL: nothing in it may turn a TLS check off."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from ironcurtain.escalation.tls import Endpoint, context
from ironcurtain.shared.pki import TeamTLS


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rediss://redis:6379/0", Endpoint("redis", 6379, 0)),
        ("rediss://team.example", Endpoint("team.example", 6379, 0)),
        ("rediss://10.0.0.5:7000/3", Endpoint("10.0.0.5", 7000, 3)),
    ],
)
def test_plain_rediss_urls_parse(url: str, expected: Endpoint) -> None:
    assert Endpoint.parse(url) == expected


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis://redis:6379/0", "plaintext Redis is refused"),
        ("unix:///run/redis.sock", "not a rediss:// URL"),
        ("http://redis:6379/0", "not a rediss:// URL"),
        ("rediss://redis:6379/0?ssl_cert_reqs=none", "no user, password or options"),
        ("rediss://redis:6379/0?ssl_check_hostname=false", "no user, password or options"),
        ("rediss://u:p@redis:6379/0", "no user, password or options"),
        ("rediss://redis:6379/0#x", "no user, password or options"),
        ("rediss://redis:6379/zero", "not a Redis database number"),
        ("rediss://redis:notaport/0", "not a Redis URL"),
        ("rediss:///0", "not a rediss:// URL"),
    ],
)
def test_anything_else_is_refused_saying_why(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        Endpoint.parse(url)


def test_the_context_trusts_the_team_ca_alone_and_checks_names(tmp_path: Path) -> None:
    tls = TeamTLS(tmp_path / "tls")
    tls.ensure([], say=lambda _: None)
    found = context(tls.ca)
    assert found.verify_mode is ssl.CERT_REQUIRED
    assert found.check_hostname
    assert found.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert len(found.get_ca_certs()) == 1  # no system store


def test_no_ca_file_or_one_that_is_no_certificate_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        context(tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ssl.SSLError):
        context(tmp_path / "junk.pem")
