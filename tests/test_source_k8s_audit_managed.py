"""Managed-cluster exports read by the k8s_audit source: GKE audit log entries (converted as the
k8saudit-gke plugin does) matched by the upstream k8saudit rules, EKS and AKS wrappers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.sources.k8s_audit_gke import object_reference
from engine.sources.readers import ReadStats, read_events
from tests.support.source_fields import extract


def gke_entry(
    method: str, resource_name: str, request: dict | None = None, **overrides: object
) -> dict:
    entry = {
        "insertId": "a1b2",
        "logName": "projects/p1/logs/cloudaudit.googleapis.com%2Factivity",
        "receiveTimestamp": "2024-03-01T12:00:00.123456789Z",
        "timestamp": "2024-03-01T11:59:59Z",
        "resource": {
            "type": "k8s_cluster",
            "labels": {"cluster_name": "prod", "location": "europe-west1", "project_id": "p1"},
        },
        "labels": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "serviceName": "k8s.io",
            "methodName": method,
            "resourceName": resource_name,
            "authenticationInfo": {"principalEmail": "dev@example.com"},
            "requestMetadata": {
                "callerIp": "203.0.113.7",
                "callerSuppliedUserAgent": "kubectl/v1.29",
            },
        },
    }
    if request is not None:
        entry["protoPayload"]["request"] = request
    entry.update(overrides)
    return entry


PRIVILEGED_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "debug"},
    "spec": {
        "containers": [
            {"name": "c", "image": "busybox:1.36", "securityContext": {"privileged": True}}
        ]
    },
}


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        (
            "core/v1/namespaces/default/pods/nginx",
            {
                "apiGroup": "core",
                "apiVersion": "v1",
                "namespace": "default",
                "resource": "pods",
                "name": "nginx",
            },
        ),
        (
            "core/v1/namespaces/default/pods",
            {"apiGroup": "core", "apiVersion": "v1", "namespace": "default", "resource": "pods"},
        ),
        (
            "core/v1/namespaces/default/pods/nginx/exec",
            {
                "apiGroup": "core",
                "apiVersion": "v1",
                "namespace": "default",
                "resource": "pods",
                "name": "nginx",
                "subresource": "exec",
            },
        ),
        (
            "core/v1/namespaces/foo",
            {"apiGroup": "core", "apiVersion": "v1", "resource": "namespaces", "name": "foo"},
        ),
        (
            "rbac.authorization.k8s.io/v1/clusterrolebindings/admin/status",
            {
                "apiGroup": "rbac.authorization.k8s.io",
                "apiVersion": "v1",
                "resource": "clusterrolebindings",
                "name": "admin",
                "subresource": "status",
            },
        ),
        ("core/v1", None),
        ("", None),
    ],
)
def test_object_references(name: str, reference: dict | None) -> None:
    assert object_reference(name) == reference


def test_gke_entries_become_audit_events(tmp_path: Path) -> None:
    export = tmp_path / "gke.json"
    entries = [
        gke_entry(
            "io.k8s.core.v1.pods.create", "core/v1/namespaces/default/pods/debug", PRIVILEGED_POD
        ),
        gke_entry("io.k8s.core.v1.pods.exec.create", "core/v1/namespaces/default/pods/debug/exec"),
        gke_entry(
            "io.k8s.core.v1.pods.list",
            "core/v1/namespaces/default/pods",
            protoPayload={"@type": "x", "serviceName": "k8s.io"},
        ),
    ]
    export.write_text(json.dumps(entries))
    stats = ReadStats()
    create, exec_ = read_events("k8s_audit", export, stats)
    assert stats.events == 2  # the third payload type is dropped, as upstream
    assert extract("k8s_audit", "ka.verb", create) == "create"
    assert extract("k8s_audit", "ka.target.resource", create) == "pods"
    assert extract("k8s_audit", "ka.user.name", create) == "dev@example.com"
    assert extract("k8s_audit", "ka.auth.decision", create) == "allow"
    assert extract("k8s_audit", "ka.cluster.name", create) == "prod"
    assert extract("k8s_audit", "ka.response.code", create) == "201"
    assert extract("k8s_audit", "ka.req.pod.containers.privileged", create) == ("true",)
    assert extract("k8s_audit", "ka.sourceips", create) == ("203.0.113.7",)
    # receiveTimestamp, to the microsecond (metav1.MicroTime)
    assert extract("k8s_audit", "evt.time.iso8601", create) == "2024-03-01T12:00:00.123456000Z"
    assert extract("k8s_audit", "jevt.value[/stage]", exec_) == "ResponseStarted"
    assert extract("k8s_audit", "ka.response.code", exec_) == "101"
    assert extract("k8s_audit", "ka.target.subresource", exec_) == "exec"


def test_upstream_rules_fire_on_gke_entries(shared_dir: Path, tmp_path: Path) -> None:
    from engine.loader import load_rules_files, rulesets_for

    rules = [
        shared_dir / "upstream-rules/k8s_audit_rules.yaml",
        shared_dir / "upstream-rules/k8saudit-gke/k8s_audit_rules_gke.yaml",
    ]
    rulesets = rulesets_for(load_rules_files(rules, use_cache=False), matching="all")
    export = tmp_path / "gke.jsonl"
    export.write_text(
        json.dumps(
            gke_entry(
                "io.k8s.core.v1.pods.create",
                "core/v1/namespaces/default/pods/debug",
                PRIVILEGED_POD,
            )
        )
        + "\n"
    )
    (event,) = read_events("k8s_audit", export)
    assert "Create Privileged Pod" in [rule.name for rule in rulesets.evaluate(event, "k8s_audit")]


def audit_event(audit_id: str) -> dict:
    return {
        "kind": "Event",
        "auditID": audit_id,
        "stageTimestamp": "2024-01-01T00:00:00Z",
        "verb": "get",
    }


def test_eks_cloudwatch_and_aks_diagnostic_exports(tmp_path: Path) -> None:
    eks = tmp_path / "eks.json"
    eks.write_text(
        json.dumps(
            {
                "events": [
                    {"timestamp": 1, "message": json.dumps(audit_event("eks-1"))},
                    {"message": "not json"},
                ]
            }
        )
    )
    aks = tmp_path / "aks.jsonl"
    aks.write_text(
        json.dumps(
            {
                "records": [
                    {
                        "category": "kube-audit",
                        "properties": {"log": json.dumps(audit_event("aks-1"))},
                    }
                ]
            }
        )
        + "\n"
        + json.dumps(
            {"category": "kube-apiserver", "properties": {"log": "I0101 00:00:00 klog text"}}
        )
        + "\n"
        + json.dumps(
            {"category": "kube-audit", "properties": {"log": json.dumps(audit_event("aks-2"))}}
        )
        + "\n"
    )
    stats = ReadStats()
    events = list(read_events("k8s_audit", tmp_path, stats))
    assert sorted(extract("k8s_audit", "ka.auditid", e) for e in events) == [
        "aks-1",
        "aks-2",
        "eks-1",
    ]
    assert (
        stats.skipped == 0
    )  # klog records and non-JSON messages are not audit events: skipped quietly
