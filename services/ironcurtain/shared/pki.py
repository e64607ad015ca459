"""The team's TLS: one CA made by `shared up`, and the server certificate Redis presents.

Pure builders (`build_ca`, `issue`) and one small file keeper (`TeamTLS`). The CA key never leaves
the shared state folder and is mounted into no container; the server key is mounted into Redis
only; the CA certificate is public (clients pin it as their only trust anchor for the team, so it
is never added to a system store). The server certificate names exactly the host names clients
dial: `redis` (the service on the stack's networks) and whatever `--host` the operator gives for
other machines; it is re-issued from the CA when those names change or it nears its end.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .. import once

CA_LIFETIME = dt.timedelta(days=3650)
SERVER_LIFETIME = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)
LOCAL_NAME = "redis"  # the Redis service's name on the stack's own networks
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


class TLSError(RuntimeError):
    """The team's TLS files are unusable; the message says what to do."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def build_ca(
    now: dt.datetime | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A new team CA (pure): ECDSA P-256, CA with pathlen 0 (it signs leaves only)."""
    now = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "IronCurtain"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"IronCurtain team CA {secrets.token_hex(4)}"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def check_names(names: Iterable[str]) -> tuple[str, ...]:
    """Host names (or IP literals) for the server certificate: sorted, unique, never wildcards."""
    found = sorted(set(names))
    for name in found:
        if not (_is_ip(name) or _HOST.fullmatch(name)):
            raise ValueError(f"not a host name for the team certificate: {name[:80]!r}")
    if not found:
        raise ValueError("the team certificate needs at least one host name")
    return tuple(found)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def issue(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: Iterable[str],
    now: dt.datetime | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A server certificate for `names` signed by the CA (pure): serverAuth only."""
    now = now or _now()
    names = check_names(names)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + SERVER_LIFETIME, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def fingerprint(cert_pem: bytes) -> str:
    """sha256:<hex> of the certificate's DER: what an operator hands a joining machine."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return "sha256:" + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def names_of(cert: x509.Certificate) -> tuple[str, ...]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    found = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    found += [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    return tuple(sorted(found))


@dataclass(frozen=True, slots=True)
class TeamTLS:
    """The files under `<shared>/tls/` (0700): the CA (key 0600, mounted nowhere) and Redis's
    certificate and key (key 0600, mounted into Redis only)."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca-key.pem"

    @property
    def server_cert(self) -> Path:
        return self.cert("redis")

    @property
    def server_key(self) -> Path:
        return self.key("redis")

    def ensure(
        self,
        names: Iterable[str] = (),
        say: Callable[[str], None] = print,
        now: dt.datetime | None = None,
    ) -> bool:
        """Make the CA once; (re-)issue Redis's certificate (and, with team host `names`, the
        registrar's) when missing, naming other hosts, or ending within 30 days. True if Redis's
        was (re-)issued (Redis must restart to present it)."""
        now = now or _now()
        names = tuple(names)
        wanted = check_names([LOCAL_NAME, *names])
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory.chmod(0o700)
        with once.held(self.directory / ".lock"):  # sessions starting together make one CA
            if not self.ca_key.exists():
                cert, key = build_ca(now)
                self.ca.unlink(missing_ok=True)
                once.publish(self.ca_key, _pem_key(key), 0o600)  # the key first
                once.publish(self.ca, cert.public_bytes(serialization.Encoding.PEM), 0o644)
                print_ = fingerprint(self.ca.read_bytes())
                say(f"shared: a new team CA was made: {self.ca} ({print_})")
            ca_cert, ca_key = self.load_ca()
            made = self._leaf("redis", ca_cert, ca_key, wanted, now)
            if names:  # a team server: the registrar answers other machines under those names
                self._leaf("registrar", ca_cert, ca_key, check_names(names), now)
        if made:
            say(f"shared: Redis's certificate now names {', '.join(wanted)}")
        return made

    def cert(self, stem: str) -> Path:
        return self.directory / f"{stem}.pem"

    def key(self, stem: str) -> Path:
        return self.directory / f"{stem}-key.pem"

    def _leaf(
        self,
        stem: str,
        ca_cert: x509.Certificate,
        ca_key: ec.EllipticCurvePrivateKey,
        names: tuple[str, ...],
        now: dt.datetime,
    ) -> bool:
        if self._current(stem, ca_cert, names, now):
            return False
        cert, key = issue(ca_cert, ca_key, names, now)
        _replace(self.key(stem), _pem_key(key), 0o600)
        _replace(self.cert(stem), cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return True

    def load_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if self.ca_key.stat().st_mode & 0o077:
            raise TLSError(f"{self.ca_key} is readable by others; fix its mode (0600)")
        key = serialization.load_pem_private_key(self.ca_key.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(self.ca.read_bytes())
        if not isinstance(key, ec.EllipticCurvePrivateKey) or cert.public_key() != key.public_key():
            raise TLSError(f"{self.ca} does not belong to {self.ca_key}; remove both to start over")
        return cert, key

    def _current(
        self, stem: str, ca_cert: x509.Certificate, names: tuple[str, ...], now: dt.datetime
    ) -> bool:
        if not (self.cert(stem).exists() and self.key(stem).exists()):
            return False
        cert = x509.load_pem_x509_certificate(self.cert(stem).read_bytes())
        return (
            cert.issuer == ca_cert.subject
            and names_of(cert) == names
            and cert.not_valid_after_utc - now > RENEW_BEFORE
        )


def _replace(path: Path, data: bytes, mode: int) -> None:
    """Write `data` under a private name with `mode`, then rename over `path` (atomic)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(temporary, mode)
    os.replace(temporary, path)
