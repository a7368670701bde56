"""`kubernetes:terminate|label|networkpolicy`: act on the alert's pod (k8s.pod.name in
k8s.ns.name) through the Kubernetes API.

networkpolicy isolates one pod: it labels the pod `falconet.dev/isolated=<pod>` and creates a
deny-all NetworkPolicy (or CiliumNetworkPolicy) selecting that label, so replicas are untouched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from engine.response.actions.base import Action, Param, register_action
from engine.response.errors import ActionError
from engine.response.kube_api import KubeConnection, connect

ISOLATION_LABEL = "falconet.dev/isolated"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")

_TARGET = (
    Param("pod", "string", "pod name", "${k8s.pod.name}"),
    Param("namespace", "string", "pod namespace", "${k8s.ns.name}"),
    Param("kubeconfig", "string", "kubeconfig file (default: $KUBECONFIG, else in-cluster)", None),
    Param("context", "string", "kubeconfig context (default: current-context)", None),
)


def _pod_path(params: Mapping[str, Any]) -> tuple[str, str, str]:
    pod, namespace = params["pod"], params["namespace"]
    for what, value in (("pod", pod), ("namespace", namespace)):
        if not isinstance(value, str) or not _NAME.match(value):
            raise ActionError(
                f"no usable {what} name in the alert ({value!r})",
                "add %k8s.pod.name and %k8s.ns.name to the rule's output",
            )
    return pod, namespace, f"/api/v1/namespaces/{namespace}/pods/{pod}"


def _check(status: int, document: Any, doing: str) -> None:
    if status >= 300:
        message = document.get("message") if isinstance(document, dict) else str(document)[:200]
        raise ActionError(f"Kubernetes API refused to {doing}: HTTP {status}: {message}")


def _label(connection: KubeConnection, path: str, labels: Mapping[str, Any]) -> None:
    status, document = connection.request(
        "PATCH", path, {"metadata": {"labels": dict(labels)}}, "application/merge-patch+json"
    )
    _check(status, document, "label the pod")


class _PodAction(Action):
    def connection(self, params: Mapping[str, Any]) -> KubeConnection:
        return connect(params["kubeconfig"], params["context"])


@register_action
class DeletePod(_PodAction):
    name = "kubernetes:terminate"
    summary = "Delete the alert's pod."
    params = (*_TARGET, Param("grace_period", "integer", "pod termination grace seconds", 0))

    def run(self, params: dict[str, Any], alert: Mapping[str, Any]) -> dict[str, Any]:
        pod, namespace, path = _pod_path(params)
        body = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "gracePeriodSeconds": int(params["grace_period"]),
        }
        status, document = self.connection(params).request("DELETE", path, body)
        if status == 404:
            raise ActionError(f"pod {namespace}/{pod} not found")
        _check(status, document, "delete the pod")
        return {"deleted": f"{namespace}/{pod}"}


@register_action
class LabelPod(_PodAction):
    name = "kubernetes:label"
    summary = "Add (or with a null value remove) labels on the alert's pod."
    params = (*_TARGET, Param("labels", "object", "labels to set; null removes one", required=True))

    def run(self, params: dict[str, Any], alert: Mapping[str, Any]) -> dict[str, Any]:
        pod, namespace, path = _pod_path(params)
        labels = {str(k): (None if v is None else str(v)) for k, v in params["labels"].items()}
        _label(self.connection(params), path, labels)
        return {"pod": f"{namespace}/{pod}", "labels": labels}


def _network_policy(name: str, pod: str) -> tuple[str, dict[str, Any]]:
    selector = {"matchLabels": {ISOLATION_LABEL: pod}}
    return "networking.k8s.io/v1/{ns}/networkpolicies", {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "falconet"}},
        # Selected, both directions listed, no rule: all traffic to and from the pod is denied.
        "spec": {"podSelector": selector, "policyTypes": ["Ingress", "Egress"]},
    }


def _cilium_policy(name: str, pod: str) -> tuple[str, dict[str, Any]]:
    return "cilium.io/v2/{ns}/ciliumnetworkpolicies", {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "falconet"}},
        "spec": {
            "endpointSelector": {"matchLabels": {ISOLATION_LABEL: pod}},
            "ingressDeny": [{"fromEntities": ["all"]}],
            "egressDeny": [{"toEntities": ["all"]}],
        },
    }


_POLICY_KINDS = {"NetworkPolicy": _network_policy, "CiliumNetworkPolicy": _cilium_policy}


@register_action
class IsolatePod(_PodAction):
    name = "kubernetes:networkpolicy"
    summary = "Isolate the alert's pod with a deny-all NetworkPolicy or CiliumNetworkPolicy."
    params = (
        *_TARGET,
        Param("kind", "string", "NetworkPolicy or CiliumNetworkPolicy", "NetworkPolicy"),
    )

    def run(self, params: dict[str, Any], alert: Mapping[str, Any]) -> dict[str, Any]:
        pod, namespace, path = _pod_path(params)
        build = _POLICY_KINDS.get(str(params["kind"]))
        if build is None:
            raise ActionError(
                f"unknown policy kind {params['kind']!r}",
                "use NetworkPolicy or CiliumNetworkPolicy",
            )
        connection = self.connection(params)
        _label(connection, path, {ISOLATION_LABEL: pod})
        name = f"falconet-isolate-{pod}"[:253]
        where, policy = build(name, pod)
        group_version, _, plural = where.partition("/{ns}/")
        prefix = "/apis/" + group_version
        status, document = connection.request(
            "POST", f"{prefix}/namespaces/{namespace}/{plural}", policy
        )
        if status == 409:  # already isolated by an earlier alert
            return {
                "pod": f"{namespace}/{pod}",
                "policy": name,
                "kind": policy["kind"],
                "created": False,
            }
        _check(status, document, f"create {policy['kind']} {name}")
        return {
            "pod": f"{namespace}/{pod}",
            "policy": name,
            "kind": policy["kind"],
            "created": True,
        }
