"""One Kubernetes audit event (alice creates pod `web`), posted to webhook endpoints by the daemon
tests and bench/bench_hostile_feed.py."""

from __future__ import annotations

from typing import Any

EVENT: dict[str, Any] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "RequestResponse",
    "timestamp": "2018-10-25T14:09:12Z",
    "stageTimestamp": "2018-10-25T14:09:12.581541Z",
    "auditID": "a362d22b-db3c-4590-9505-23782f12925f",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/default/pods",
    "verb": "create",
    "user": {"username": "alice"},
    "objectRef": {"resource": "pods", "namespace": "default", "name": "web"},
    "responseStatus": {"code": 201},
}
