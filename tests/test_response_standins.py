"""Kubernetes and AWS Lambda actions against STAND-INS, not the real services: a local HTTP
server that records the Kubernetes API requests, and moto's server for Lambda (its simple
Lambda backend echoes the payload instead of running code)."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.certificates import TestCA as CertificateAuthority
from tests.support.ports import free_port
from tests.support.response import respond_once


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class KubeApiStandIn:
    """Answers every request with `status` (or `statuses[path]`) and records it."""

    statuses: dict[tuple[str, str], int] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self, tls: CertificateAuthority | None = None) -> KubeApiStandIn:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                outer.requests.append(
                    Recorded(self.command, self.path, dict(self.headers.items()), body)
                )
                status = outer.statuses.get((self.command, self.path), 200)
                payload = json.dumps({"kind": "Status", "message": f"stand-in {status}"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.server_cert, tls.server_key)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def kube_api(tmp_path: Path) -> Iterator[tuple[KubeApiStandIn, str]]:
    ca = CertificateAuthority(tmp_path / "tls")
    api = KubeApiStandIn().start(tls=ca)
    ca_data = base64.b64encode(ca.ca_cert.read_bytes()).decode()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "test",
                "contexts": [{"name": "test", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {"server": api.url, "certificate-authority-data": ca_data},
                    }
                ],
                "users": [{"name": "u", "user": {"token": "sa-token"}}],
            }
        )
    )
    yield api, str(kubeconfig)
    api.stop()


POD_ALERT = {
    "rule": "Terminal shell in container",
    "priority": "Notice",
    "source": "syscall",
    "output_fields": {"k8s.pod.name": "web-7d4b9", "k8s.ns.name": "shop", "proc.pid": 1},
}


def test_kubernetes_terminate_deletes_the_pod_on_a_stand_in_api(kube_api: Any) -> None:
    api, kubeconfig = kube_api
    outcome = respond_once("kubernetes:terminate", POD_ALERT, kubeconfig=kubeconfig)
    assert outcome.status == "succeeded", outcome.error
    (request,) = api.requests
    assert (request.method, request.path) == ("DELETE", "/api/v1/namespaces/shop/pods/web-7d4b9")
    assert request.headers["Authorization"] == "Bearer sa-token"  # over TLS, CA from kubeconfig
    assert request.body["gracePeriodSeconds"] == 0


def test_kubernetes_label_patches_the_pod_on_a_stand_in_api(kube_api: Any) -> None:
    api, kubeconfig = kube_api
    outcome = respond_once(
        "kubernetes:label",
        POD_ALERT,
        kubeconfig=kubeconfig,
        labels={"falconet.dev/suspicious": "${rule}", "stale": None},
    )
    assert outcome.status == "succeeded", outcome.error
    (request,) = api.requests
    assert request.method == "PATCH"
    assert request.headers["Content-Type"] == "application/merge-patch+json"
    labels = request.body["metadata"]["labels"]
    assert labels == {"falconet.dev/suspicious": "Terminal shell in container", "stale": None}


@pytest.mark.parametrize("kind", ["NetworkPolicy", "CiliumNetworkPolicy"])
def test_kubernetes_networkpolicy_isolates_one_pod_on_a_stand_in_api(
    kube_api: Any, kind: str
) -> None:
    api, kubeconfig = kube_api
    outcome = respond_once("kubernetes:networkpolicy", POD_ALERT, kubeconfig=kubeconfig, kind=kind)
    assert outcome.status == "succeeded", outcome.error
    label, create = api.requests
    assert label.method == "PATCH"
    assert label.body["metadata"]["labels"] == {"falconet.dev/isolated": "web-7d4b9"}
    assert create.method == "POST"
    policy = create.body
    assert policy["kind"] == kind and policy["metadata"]["name"] == "falconet-isolate-web-7d4b9"
    if kind == "NetworkPolicy":
        assert create.path == "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies"
        assert policy["spec"]["podSelector"]["matchLabels"] == {
            "falconet.dev/isolated": "web-7d4b9"
        }
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        assert "ingress" not in policy["spec"] and "egress" not in policy["spec"]
    else:
        assert create.path == "/apis/cilium.io/v2/namespaces/shop/ciliumnetworkpolicies"
        assert policy["spec"]["egressDeny"] == [{"toEntities": ["all"]}]


def test_kubernetes_errors_from_a_stand_in_api(kube_api: Any) -> None:
    api, kubeconfig = kube_api
    api.statuses[("DELETE", "/api/v1/namespaces/shop/pods/web-7d4b9")] = 403
    forbidden = respond_once("kubernetes:terminate", POD_ALERT, kubeconfig=kubeconfig)
    assert forbidden.status == "failed" and "HTTP 403" in (forbidden.error or "")
    no_pod = respond_once(
        "kubernetes:terminate", {**POD_ALERT, "output_fields": {}}, kubeconfig=kubeconfig
    )
    assert no_pod.status == "failed" and "k8s.pod.name" in (no_pod.error or "")
    api.statuses[("POST", "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies")] = 409
    again = respond_once("kubernetes:networkpolicy", POD_ALERT, kubeconfig=kubeconfig)
    assert again.status == "succeeded" and again.changed["created"] is False


@pytest.fixture
def moto_lambda(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import requests

    binary = shutil.which("moto_server") or str(Path(os.__file__).parents[2] / "bin/moto_server")
    if not Path(binary).exists():
        pytest.skip("moto_server not installed (pip install 'moto[server]')")
    port = free_port()
    server = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                requests.get(url + "/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        requests.post(url + "/moto-api/config", json={"lambda": {"use_docker": False}}, timeout=5)
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(key, value)
        _create_function(url)
        yield url
    finally:
        server.terminate()
        server.wait(10)


def _create_function(url: str) -> None:
    import boto3

    role = boto3.client("iam", endpoint_url=url).create_role(
        RoleName="falconet-response",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("handler.py", "def handler(event, context):\n    return event\n")
    boto3.client("lambda", endpoint_url=url).create_function(
        FunctionName="isolate-host",
        Runtime="python3.11",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": archive.getvalue()},
    )


def test_aws_lambda_invoked_with_the_alert_on_moto_stand_in(moto_lambda: str) -> None:
    outcome = respond_once(
        "aws:lambda",
        POD_ALERT,
        function="isolate-host",
        endpoint_url=moto_lambda,
        region="us-east-1",
        payload={"pod": "${k8s.pod.name}", "alert": "${rule}"},
    )
    assert outcome.status == "succeeded", outcome.error
    assert outcome.changed["status"] == 200
    # moto's simple Lambda backend answers with the payload it received
    assert json.loads(outcome.changed["response"]) == {
        "pod": "web-7d4b9",
        "alert": "Terminal shell in container",
    }


def test_kubernetes_without_kubeconfig_or_service_account_fails_with_a_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    outcome = respond_once("kubernetes:label", POD_ALERT, labels={"a": "b"})
    assert outcome.status == "failed"
    assert "no kubeconfig given" in (outcome.error or "") and "KUBECONFIG" in (outcome.error or "")
