"""Audit events wrapped by managed-cluster log pipelines, as the k8saudit-eks and k8saudit-aks
plugins unwrap them:

- EKS: CloudWatch Logs events of the `kube-apiserver-audit` stream, whose `message` is an audit
  Event; files as `aws logs filter-log-events` / `get-log-events` write them
  (`{"events": [{"timestamp", "message"}, ...]}`);
- AKS: Azure diagnostic records (`{"records": [{"category": "kube-audit", "properties":
  {"log": "<audit Event JSON>"}}]}`), as Event Hubs or a storage export deliver them. Records of
  other categories carry klog text in `properties.log`: they are skipped, as upstream does.
"""

from __future__ import annotations

import json
from typing import Any


def _embedded_json(text: Any) -> Any | None:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None  # klog text, not an audit event


def unwrap_export(document: Any) -> list[Any] | None:
    """The documents an EKS/AKS export wraps (to be read as audit payloads), or None when
    `document` is not such an export."""
    if not isinstance(document, dict) or "kind" in document:
        return None
    if isinstance(document.get("events"), list):  # CloudWatch Logs
        return [
            parsed
            for item in document["events"]
            if isinstance(item, dict)
            and (parsed := _embedded_json(item.get("message"))) is not None
        ]
    if isinstance(document.get("records"), list):  # Azure diagnostic records
        return [
            parsed
            for record in document["records"]
            if (parsed := unwrap_record(record)) is not None
        ]
    if isinstance(document.get("properties"), dict):  # one Azure record per line
        parsed = unwrap_record(document)
        return [] if parsed is None else [parsed]
    return None


def unwrap_record(record: Any) -> Any | None:
    properties = record.get("properties") if isinstance(record, dict) else None
    return _embedded_json(properties.get("log")) if isinstance(properties, dict) else None
