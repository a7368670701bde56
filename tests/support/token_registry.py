"""A registry behind the Docker token flow: distribution 2.8 with `auth: token`, plus a small
token service that issues ES256 JWTs (x5c header) for a test user, and counts its requests.

This is the Bearer scheme ghcr.io, Docker Hub and Harbor use, run entirely on loopback.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.support.certificates import self_signed_ca, write_certificate
from tests.support.registry_server import PASSWORD, USER, RegistryServer

SERVICE = "falconet-test-registry"
ISSUER = "falconet-test-token-issuer"
REFRESH_TOKEN = "falconet-refresh-token"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    def __init__(self, directory: Path, lifetime: int = 300) -> None:
        self.lifetime = lifetime
        self.requests: list[dict[str, str]] = []
        self.key, self.cert = self_signed_ca("falconet token signer")
        directory.mkdir(parents=True, exist_ok=True)
        self.bundle = directory / "token-signer.pem"
        write_certificate(self.cert, self.bundle)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def issue(self, scope: str) -> str:
        access = []
        for item in scope.split():
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {
            "alg": "ES256",
            "typ": "JWT",
            "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()],
        }
        claims = {
            "iss": ISSUER,
            "sub": USER,
            "aud": SERVICE,
            "exp": now + self.lifetime,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input}.{_b64(signature)}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                query = {k: v[-1] for k, v in parse_qs(urlparse(self.path).query).items()}
                self._answer(query, "token")

            def do_POST(self) -> None:
                """OAuth2 client-credentials grant (the client id/secret are USER/PASSWORD)."""
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if form.get("grant_type") == "refresh_token":
                    # docker's identity-token flow: the refresh token replaces the password.
                    service.requests.append(form)
                    if form.get("refresh_token") != REFRESH_TOKEN:
                        self._deny(401)
                        return
                    self._send_token(form, "access_token")
                    return
                if form.get("grant_type") != "client_credentials":
                    self._deny(400)
                    return
                self._answer(form, "access_token")

            def _deny(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _answer(self, query: dict[str, str], field: str) -> None:
                service.requests.append(query)
                if self.headers.get("Authorization") != expected:
                    self._deny(401)
                    return
                self._send_token(query, field)

            def _send_token(self, query: dict[str, str], field: str) -> None:
                body = json.dumps(
                    {
                        field: service.issue(query.get("scope", "")),
                        "expires_in": service.lifetime,
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


class TokenRegistryServer(RegistryServer):
    """docker-registry configured for the token flow against a TokenService."""

    token_service: TokenService | None = None

    def _config_lines(self) -> list[str]:
        assert self.token_service is not None
        return [
            *super()._config_lines(),
            "auth:",
            "  token:",
            f"    realm: {self.token_service.realm}",
            f"    service: {SERVICE}",
            f"    issuer: {ISSUER}",
            f"    rootcertbundle: {self.token_service.bundle}",
        ]
