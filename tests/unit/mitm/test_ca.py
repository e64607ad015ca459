"""The CA and leaf certificates: modes, extensions, lifetimes, renewal, and the CLI."""

from __future__ import annotations

import contextlib
import datetime as dt
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from ironcurtain.cli import main
from ironcurtain.mitm import ca, tls

from ..racers import race

HOSTS = ["api.anthropic.com", "api.openai.com"]


@pytest.fixture
def authority(tmp_path: Path) -> ca.Authority:
    ca.init(tmp_path / "ca", HOSTS)
    return ca.load(tmp_path / "ca")


def test_ca_init_writes_a_key_only_its_owner_can_read(tmp_path: Path) -> None:
    ca.init(tmp_path / "ca", HOSTS)
    assert stat.S_IMODE((tmp_path / "ca" / ca.KEY_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700


def test_a_ca_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    ca.init(tmp_path / "ca", HOSTS)
    (tmp_path / "ca" / ca.KEY_FILE).chmod(0o644)
    with pytest.raises(ca.CAError, match="lets others read it"):
        ca.load(tmp_path / "ca")


def test_ca_init_refuses_to_overwrite_an_existing_ca(tmp_path: Path) -> None:
    ca.init(tmp_path / "ca", HOSTS)
    with pytest.raises(ca.CAError, match="already holds a CA"):
        ca.init(tmp_path / "ca", HOSTS)


def test_a_missing_ca_is_reported_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ca.CAError, match="ironcurtain ca init"):
        ca.load(tmp_path / "nothing")


def test_an_expired_ca_is_refused(tmp_path: Path) -> None:
    ca.init(tmp_path / "ca", HOSTS, dt.timedelta(days=1))
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    with pytest.raises(ca.CAError, match="expired"):
        ca.load(tmp_path / "ca", now=later)


def test_the_ca_can_sign_leaves_only_for_provider_hosts(authority: ca.Authority) -> None:
    cert = authority.cert
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert (basic.value.ca, basic.value.path_length) == (True, 0)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert (usage.key_cert_sign, usage.crl_sign, usage.digital_signature) == (True, True, False)
    names = cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert names.critical
    assert sorted(n.value for n in names.value.permitted_subtrees) == HOSTS
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime <= dt.timedelta(days=366)
    assert isinstance(authority.key, ec.EllipticCurvePrivateKey)


def test_a_leaf_is_ecdsa_p256_short_lived_and_names_only_its_host(
    authority: ca.Authority,
) -> None:
    now = dt.datetime.now(dt.UTC)
    cert, key = tls.issue(authority, "api.anthropic.com", now)
    assert isinstance(key.curve, ec.SECP256R1)
    assert cert.not_valid_after_utc - now <= dt.timedelta(days=1)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["api.anthropic.com"]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    cert.verify_directly_issued_by(authority.cert)


def test_leaves_are_cached_and_renewed_before_they_expire(authority: ca.Authority) -> None:
    now = [dt.datetime.now(dt.UTC)]
    leaves = tls.Leaves(authority, clock=lambda: now[0])
    first = leaves.context("api.anthropic.com")
    assert leaves.context("api.anthropic.com") is first
    now[0] += dt.timedelta(hours=15)  # 9 h left: still fine
    assert leaves.context("api.anthropic.com") is first
    now[0] += dt.timedelta(hours=2)  # 7 h left: inside the renewal window
    assert leaves.context("api.anthropic.com") is not first


def test_ca_init_command_limits_the_ca_to_the_provider_hosts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ca", "init", "--dir", str(tmp_path / "ca")]) == 0
    assert "api.anthropic.com" in capsys.readouterr().out
    assert main(["ca", "init", "--dir", str(tmp_path / "ca")]) == 1
    assert "already holds a CA" in capsys.readouterr().out


def test_fake_key_command_prints_a_key_with_the_providers_prefix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["mitm", "fake-key", "openai"]) == 0
    assert capsys.readouterr().out.startswith("sk-proj-")


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, name: str) -> None:
    """A full TLS handshake in memory (no sockets): raises if the client rejects the server."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    cli = client.wrap_bio(c_in, c_out, server_hostname=name)
    srv = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (cli, srv):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    cli.do_handshake()


def test_clients_enforce_the_name_constraints(authority: ca.Authority, tmp_path: Path) -> None:
    client = ssl.create_default_context(cafile=str(authority.cert_path))
    now = dt.datetime.now(dt.UTC)
    # control: a leaf for a provider host is accepted
    _handshake(client, tls.Leaves(authority).context("api.anthropic.com"), "api.anthropic.com")
    # a leaf for any other name, even though signed by our CA, is rejected by the client
    cert, key = tls.issue(authority, "bank.example", now)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    pem = tmp_path / "leaf.pem"
    pem.write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        + cert.public_bytes(Encoding.PEM)
    )
    server.load_cert_chain(pem)
    with pytest.raises(ssl.SSLCertVerificationError, match=r"name constraint|permitted"):
        _handshake(client, server, "bank.example")


def test_sessions_starting_together_make_one_ca_and_all_use_it(tmp_path: Path) -> None:
    results = race(
        "from pathlib import Path\nfrom ironcurtain.mitm import ca",
        f"directory = Path({str(tmp_path / 'ca')!r})\n"
        f"made = ca.ensure(directory, {HOSTS!r})\n"
        "result = [made, str(ca.load(directory).cert.serial_number)]",
    )
    assert sorted(made for made, _ in results) == [False] * 7 + [True]  # type: ignore[misc]
    assert len({serial for _, serial in results}) == 1  # type: ignore[misc]
    made = sorted(p.name for p in (tmp_path / "ca").iterdir())
    assert made == sorted([ca.CERT_FILE, ca.KEY_FILE])
