"""Just enough of a Kubernetes API client for response actions: plain HTTPS requests with the
in-cluster service account or a kubeconfig's current context (token or client certificate)."""

from __future__ import annotations

import base64
import functools
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from engine.response.errors import ActionError

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class KubeConnection:
    server: str
    token: str | None = None
    verify: Any = True  # CA file path, True (system CAs) or False
    client_cert: tuple[str, str] | None = None

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        import requests

        headers = {"Accept": "application/json", "Content-Type": content_type}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = requests.request(
                method,
                self.server.rstrip("/") + path,
                json=body,
                headers=headers,
                verify=self.verify,
                cert=self.client_cert,
                timeout=10,
            )
        except requests.RequestException as error:
            raise ActionError(f"Kubernetes API {self.server}: {error}") from error
        try:
            document = response.json()
        except ValueError:
            document = response.text
        return response.status_code, document


def _data_file(data: str, suffix: str) -> str:
    """kubeconfig *-data fields are base64; requests wants files."""
    handle = tempfile.NamedTemporaryFile("wb", suffix=suffix, delete=False)  # noqa: SIM115
    with handle:
        handle.write(base64.b64decode(data))
    os.chmod(handle.name, 0o600)
    return handle.name


def _named(items: list[Mapping[str, Any]], name: str, kind: str) -> Mapping[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            return item.get(kind) or {}
    raise ActionError(f"kubeconfig has no {kind} named {name!r}")


def from_kubeconfig(path: str, context: str | None = None) -> KubeConnection:
    try:
        config = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ActionError(f"cannot read kubeconfig {path}: {error}") from error
    context_name = context or config.get("current-context")
    if not context_name:
        raise ActionError(f"kubeconfig {path} has no current-context", "set the context parameter")
    ctx = _named(config.get("contexts"), context_name, "context")
    cluster = _named(config.get("clusters"), ctx.get("cluster", ""), "cluster")
    user = _named(config.get("users"), ctx.get("user", ""), "user") if ctx.get("user") else {}
    verify: Any = True
    if cluster.get("insecure-skip-tls-verify"):
        verify = False
    elif cluster.get("certificate-authority"):
        verify = cluster["certificate-authority"]
    elif cluster.get("certificate-authority-data"):
        verify = _data_file(cluster["certificate-authority-data"], ".crt")
    cert = None
    if user.get("client-certificate") or user.get("client-certificate-data"):
        cert_file = user.get("client-certificate") or _data_file(
            user["client-certificate-data"], ".crt"
        )
        key_file = user.get("client-key") or _data_file(user["client-key-data"], ".key")
        cert = (cert_file, key_file)
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(user["tokenFile"]).read_text().strip()
    return KubeConnection(str(cluster.get("server", "")), token, verify, cert)


def in_cluster() -> KubeConnection:
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT"),
    )
    token_file = SERVICE_ACCOUNT / "token"
    if not host or not token_file.exists():
        raise ActionError(
            "not running in a Kubernetes pod and no kubeconfig given",
            "set the kubeconfig parameter or KUBECONFIG",
        )
    server_host = f"[{host}]" if ":" in host else host
    return KubeConnection(
        f"https://{server_host}:{port or 443}",
        token_file.read_text().strip(),
        str(SERVICE_ACCOUNT / "ca.crt"),
    )


@functools.lru_cache(maxsize=16)
def _cached_kubeconfig(path: str, context: str | None, mtime_ns: int) -> KubeConnection:
    # Keyed on the file's mtime: an edited kubeconfig is read again; an unchanged one does not
    # write its *-data fields to new temporary files for every alert.
    return from_kubeconfig(path, context)


def connect(kubeconfig: str | None, context: str | None = None) -> KubeConnection:
    """kubeconfig parameter, else $KUBECONFIG, else the in-cluster service account (whose token
    file is read at each call: kubelet rotates it)."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if not path:
        return in_cluster()
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError as error:
        raise ActionError(f"cannot read kubeconfig {path}: {error.strerror}") from error
    return _cached_kubeconfig(path, context, mtime)
