"""Our certificate authority: created once per checkout, key readable by its owner only.

The CA is ECDSA P-256, CA:TRUE with pathlen 0 (it can sign leaves, never another CA), key usage
keyCertSign + cRLSign only, a bounded lifetime, and name constraints that limit it to the
provider hosts: a stolen key could not impersonate any other site to a client trusting it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .. import once

CERT_FILE = "ca.pem"
KEY_FILE = "ca-key.pem"
DEFAULT_LIFETIME = dt.timedelta(days=365)


class CAError(RuntimeError):
    """The CA is missing, unsafe or unusable; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def build(
    hosts: Iterable[str], lifetime: dt.timedelta = DEFAULT_LIFETIME, now: dt.datetime | None = None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A new CA certificate and key (pure: nothing is written)."""
    now = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "IronCurtain"),
            x509.NameAttribute(NameOID.COMMON_NAME, "IronCurtain MITM CA"),
        ]
    )
    permitted = [x509.DNSName(h) for h in sorted(set(hosts))]
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    if permitted:
        # Exclude every IP address explicitly: a permitted-DNS-only constraint says nothing
        # about IP SANs to some verifiers.
        excluded = [
            x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")),
            x509.IPAddress(ipaddress.ip_network("::/0")),
        ]
        builder = builder.add_extension(
            x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=excluded),
            critical=True,
        )
    return builder.sign(key, hashes.SHA256()), key


def init(directory: Path, hosts: Iterable[str], lifetime: dt.timedelta = DEFAULT_LIFETIME) -> Path:
    """Write a new CA to `directory` (key 0600, certificate 0644). Refuses to overwrite one.

    Each file appears whole or not at all (`once.publish`), the key first: a certificate on disk
    always has its key beside it."""
    key_path, cert_path = directory / KEY_FILE, directory / CERT_FILE
    if key_path.exists() or cert_path.exists():
        raise CAError(f"{directory} already holds a CA; remove it first to make a new one")
    cert, key = build(hosts, lifetime)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    if not once.publish(key_path, pem, 0o600):
        raise CAError(f"{directory} already holds a CA; remove it first to make a new one")
    once.publish(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _check_key_mode(key_path)
    return cert_path


def ensure(directory: Path, hosts: Iterable[str]) -> bool:
    """Make the CA in `directory` unless it holds one; True if made here.

    Sessions from several worktrees may start at once on a fresh machine: a lock beside the
    folder lets exactly one of them make it, and the others use that one."""
    with once.held(directory.parent / f".{directory.name}.lock"):
        if (directory / CERT_FILE).is_file():
            return False
        init(directory, hosts)
        return True


def _check_key_mode(key_path: Path) -> None:
    mode = key_path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CAError(
            f"refusing to use CA key {key_path}: mode {stat.S_IMODE(mode):04o} lets others read it "
            "(chmod 600 it)"
        )


def load(directory: Path, now: dt.datetime | None = None) -> Authority:
    """Load the CA; refuse a key others can read, a non-CA cert, or an expired one."""
    key_path, cert_path = directory / KEY_FILE, directory / CERT_FILE
    if not key_path.is_file() or not cert_path.is_file():
        raise CAError(f"no CA in {directory}; run `ironcurtain ca init`")
    _check_key_mode(key_path)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CAError(f"{key_path} is not an EC private key")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    if cert.public_key() != key.public_key():
        raise CAError(f"{cert_path} does not belong to {key_path}")
    if (now or _now()) >= cert.not_valid_after_utc:
        raise CAError(f"the CA in {directory} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    return Authority(cert, key, cert_path)
