"""A real OCI registry for tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1.

Modes: plain HTTP, htpasswd Basic auth, TLS with a CA made by the test, TLS + Basic, or mutual
TLS (the registry demands a client certificate signed by that CA).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.support.certificates import TestCA
from tests.support.ports import free_port

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
USER = "falco"
PASSWORD = "s3cret-pass"


PORT_ATTEMPTS = 3


class PortTaken(RuntimeError):
    """The registry could not bind its port: something took it after free_port() chose it."""


@dataclass
class RegistryServer:
    workdir: Path
    auth: bool = False
    tls: bool = False
    mutual_tls: bool = False
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    ca: TestCA | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def storage(self) -> Path:
        return self.workdir / "storage"

    def blob_path(self, digest: str) -> Path:
        hexd = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"

    def _config_lines(self) -> list[str]:
        """The registry's config.yml; subclasses append their `auth:` or TLS settings."""
        lines = [
            "version: 0.1",
            "log: {level: error, accesslog: {disabled: true}}",
            "storage:",
            f"  filesystem: {{rootdirectory: {self.storage}}}",
            "  delete: {enabled: true}",
            "http:",
            f"  addr: {self.host}",
            "  secret: falconet-tests",
        ]
        if self.tls:
            assert self.ca is not None
            lines += [
                "  tls:",
                f"    certificate: {self.ca.server_cert}",
                f"    key: {self.ca.server_key}",
            ]
            if self.mutual_tls:
                lines.append(f"    clientcas: [{self.ca.ca_cert}]")
        if self.auth:
            htpasswd = self.workdir / "htpasswd"
            out = subprocess.run(
                ["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True
            ).stdout
            htpasswd.write_bytes(out)
            lines += ["auth:", f"  htpasswd: {{realm: falconet-tests, path: {htpasswd}}}"]
        return lines

    def start(self) -> RegistryServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.tls and self.ca is None:
            self.ca = TestCA(self.workdir / "tls")
        if self.mutual_tls and self.client_cert is None:
            assert self.ca is not None, "mutual TLS needs tls=True"
            self.client_cert, self.client_key = self.ca.issue_client()
        for _ in range(PORT_ATTEMPTS):
            config = self.workdir / "config.yml"
            config.write_text("\n".join(self._config_lines()) + "\n")
            log = open(self.workdir / "registry.log", "wb")  # noqa: SIM115 - lives with the process
            self.process = subprocess.Popen(
                [REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
            try:
                self._wait_ready()
                return self
            except PortTaken:
                # Another socket took the port between free_port() and the registry's bind.
                self.port = free_port()
        raise RuntimeError(f"docker-registry found no free port in {PORT_ATTEMPTS} attempts")

    def _wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        verify: str | bool = str(self.ca.ca_cert) if self.ca else True
        client_cert = (str(self.client_cert), str(self.client_key)) if self.mutual_tls else None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                log = (self.workdir / "registry.log").read_text()
                if "address already in use" in log:
                    raise PortTaken(log)
                raise RuntimeError(f"docker-registry exited: {log}")
            try:
                r = requests.get(f"{self.url}/v2/", timeout=1, verify=verify, cert=client_cert)
                if r.status_code in (200, 401):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("docker-registry did not become ready")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()
