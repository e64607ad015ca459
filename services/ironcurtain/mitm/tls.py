"""Leaf certificates per host, made on first use, cached, renewed before they expire.

Leaf keys are ECDSA P-256: generating one takes well under a millisecond (RSA-2048 takes tens to
hundreds), the handshake is cheaper, and every TLS client of the last decade accepts it.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .ca import Authority

LEAF_LIFETIME = dt.timedelta(days=1)
RENEW_BEFORE = dt.timedelta(hours=8)


def issue(
    authority: Authority, host: str, now: dt.datetime, lifetime: dt.timedelta = LEAF_LIFETIME
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = authority.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + lifetime, authority.cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(authority.key, hashes.SHA256())
    )
    return cert, key


def _context(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, host: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])  # never h2: we speak HTTP/1.1 to the agent

    def check_sni(sslobj: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> int | None:
        # SNI must name the CONNECT host: no fronting one name inside a tunnel to another.
        if server_name is None or server_name.lower() != host:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        return None

    ctx.sni_callback = check_sni
    # load_cert_chain reads files only: write to a private temp dir and unlink at once.
    old = os.umask(0o077)
    try:
        with tempfile.TemporaryDirectory(prefix="ic-leaf-") as tmp:
            path = os.path.join(tmp, "leaf.pem")
            with open(path, "wb") as out:
                out.write(
                    key.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    )
                )
                out.write(cert.public_bytes(serialization.Encoding.PEM))
            ctx.load_cert_chain(path)
    finally:
        os.umask(old)
    return ctx


@dataclass(slots=True)
class _Cached:
    context: ssl.SSLContext
    not_after: dt.datetime


class Leaves:
    """host -> server SSLContext holding a fresh leaf for it (in memory)."""

    def __init__(
        self,
        authority: Authority,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._authority = authority
        self._clock = clock
        self._cache: dict[str, _Cached] = {}

    def context(self, host: str) -> ssl.SSLContext:
        now = self._clock()
        cached = self._cache.get(host)
        if cached is None or cached.not_after - now < RENEW_BEFORE:
            cert, key = issue(self._authority, host, now)
            cached = _Cached(_context(cert, key, host), cert.not_valid_after_utc)
            self._cache[host] = cached
        return cached.context
