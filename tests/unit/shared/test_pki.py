"""The team CA and the certificates it signs (pure builders and the file keeper)."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from ironcurtain.shared.pki import TeamTLS, build_ca, check_names, fingerprint, issue, names_of


def test_the_ca_signs_leaves_only_and_a_leaf_serves_only() -> None:
    ca, key = build_ca()
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca
    assert basic.path_length == 0
    leaf, _ = issue(ca, key, ["redis", "10.0.0.5"])
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
    assert names_of(leaf) == ("10.0.0.5", "redis")


@pytest.mark.parametrize(
    "name", ["*.example", "a b", "a/b", "user@host", "host:6379", "", "-a.example", "a..b"]
)
def test_names_that_are_not_plain_hosts_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a host name"):
        check_names([name])


def test_files_are_private_and_made_once(tmp_path: Path) -> None:
    tls = TeamTLS(tmp_path / "tls")
    assert tls.ensure(["team.example"], say=lambda _: None)
    assert tls.directory.stat().st_mode & 0o777 == 0o700
    for key in (tls.ca_key, tls.server_key, tls.key("registrar")):
        assert key.stat().st_mode & 0o777 == 0o600
    ca = tls.ca.read_bytes()
    assert not tls.ensure(["team.example"], say=lambda _: None)  # nothing to do
    assert tls.ca.read_bytes() == ca


def test_changed_names_reissue_the_certificate_from_the_same_ca(tmp_path: Path) -> None:
    tls = TeamTLS(tmp_path / "tls")
    tls.ensure([], say=lambda _: None)
    ca = tls.ca.read_bytes()
    assert tls.ensure(["team.example"], say=lambda _: None)
    assert tls.ca.read_bytes() == ca
    cert = x509.load_pem_x509_certificate(tls.server_cert.read_bytes())
    assert names_of(cert) == ("redis", "team.example")


def test_a_certificate_near_its_end_is_renewed(tmp_path: Path) -> None:
    tls = TeamTLS(tmp_path / "tls")
    tls.ensure([], say=lambda _: None)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=340)
    assert tls.ensure([], say=lambda _: None, now=later)


def test_python_verifies_the_leaf_against_the_ca_by_name(tmp_path: Path) -> None:
    tls = TeamTLS(tmp_path / "tls")
    tls.ensure([], say=lambda _: None)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(tls.ca))
    assert fingerprint(tls.ca.read_bytes()).startswith("sha256:")
    assert len(fingerprint(tls.ca.read_bytes())) == len("sha256:") + 64


def test_a_ca_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    tls = TeamTLS(tmp_path / "tls")
    tls.ensure([], say=lambda _: None)
    tls.ca_key.chmod(0o644)
    with pytest.raises(RuntimeError, match="readable by others"):
        tls.ensure(["x.example"], say=lambda _: None)
