"""A registry that requires a client certificate (mutual TLS), with a CA made by the test."""

from __future__ import annotations

import datetime
import ipaddress
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.registry_server import RegistryServer


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@dataclass
class MutualTLS:
    directory: Path
    ca_cert: Path = field(init=False)
    server_cert: Path = field(init=False)
    server_key: Path = field(init=False)
    client_cert: Path = field(init=False)
    client_key: Path = field(init=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "falconet mTLS CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_cert = self.directory / "ca.crt"
        self.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.server_cert, self.server_key = self._leaf(
            ca, ca_key, "localhost", ExtendedKeyUsageOID.SERVER_AUTH, "server", now
        )
        self.client_cert, self.client_key = self._leaf(
            ca, ca_key, "falconet-client", ExtendedKeyUsageOID.CLIENT_AUTH, "client", now
        )

    def _leaf(self, ca, ca_key, name, usage, stem, now):  # type: ignore[no-untyped-def]
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if stem == "server":
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        cert_path, key_path = self.directory / f"{stem}.crt", self.directory / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_path)
        return cert_path, key_path


class MutualTLSRegistryServer(RegistryServer):
    mtls: MutualTLS | None = None

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    def _config(self) -> str:
        assert self.mtls is not None
        return (
            "\n".join(
                [
                    "version: 0.1",
                    "log: {level: error, accesslog: {disabled: true}}",
                    "storage:",
                    f"  filesystem: {{rootdirectory: {self.storage}}}",
                    "http:",
                    f"  addr: {self.host}",
                    "  secret: falconet-tests",
                    "  tls:",
                    f"    certificate: {self.mtls.server_cert}",
                    f"    key: {self.mtls.server_key}",
                    f"    clientcas: [{self.mtls.ca_cert}]",
                ]
            )
            + "\n"
        )

    def _wait_ready(self, timeout: float = 15.0) -> None:
        assert self.mtls is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                requests.get(
                    f"{self.url}/v2/",
                    timeout=1,
                    verify=str(self.mtls.ca_cert),
                    cert=(str(self.mtls.client_cert), str(self.mtls.client_key)),
                )
                return
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError("docker-registry (mTLS) did not become ready")
