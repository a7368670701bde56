"""Certificates made by the tests: a CA, the loopback server certificate it signs, and client
certificates for mutual TLS, all written as PEM files."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=2)
# Backdated so that a clock a little behind the signer's still accepts the certificate.
BACKDATE = datetime.timedelta(minutes=5)


def _certificate_builder(
    common_name: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
    )


def self_signed_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        _certificate_builder(common_name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def write_certificate(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def write_private_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@dataclass
class TestCA:
    """A CA and a server certificate for 127.0.0.1/localhost; `issue_client` adds client
    certificates for mutual TLS."""

    __test__ = False  # a helper, not a pytest test class

    directory: Path
    common_name: str = "falconet test CA"
    ca_cert: Path = field(init=False)
    server_cert: Path = field(init=False)
    server_key: Path = field(init=False)
    _ca_key: ec.EllipticCurvePrivateKey = field(init=False, repr=False)
    _ca: x509.Certificate = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._ca_key, self._ca = self_signed_ca(self.common_name)
        self.ca_cert = self.directory / "ca.crt"
        write_certificate(self._ca, self.ca_cert)
        loopback = x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        )
        self.server_cert, self.server_key = self._issue(
            "localhost", "server", ExtendedKeyUsageOID.SERVER_AUTH, loopback
        )

    def issue_client(self, common_name: str = "falconet-client") -> tuple[Path, Path]:
        """A client certificate and its key (paths), signed by this CA."""
        return self._issue(common_name, "client", ExtendedKeyUsageOID.CLIENT_AUTH)

    def _issue(
        self,
        common_name: str,
        stem: str,
        usage: x509.ObjectIdentifier,
        names: x509.SubjectAlternativeName | None = None,
    ) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _certificate_builder(
            common_name, self._ca.subject, key.public_key()
        ).add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if names is not None:
            builder = builder.add_extension(names, critical=False)
        cert_path, key_path = self.directory / f"{stem}.crt", self.directory / f"{stem}.key"
        write_certificate(builder.sign(self._ca_key, hashes.SHA256()), cert_path)
        write_private_key(key, key_path)
        return cert_path, key_path
