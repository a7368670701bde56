"""GKE audit log entries as Kubernetes audit Events, as the k8saudit-gke plugin converts them
(plugins/k8saudit-gke/pkg/k8sauditgke/convert.go), so that `k8s_audit` reads Cloud Logging
exports of GKE clusters (JSON LogEntry objects) with the k8saudit rules.

Not done: the plugin can also fetch cluster labels from the GKE API; falconet does not.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from engine.sources.json_event import parse_rfc3339_ns

log = logging.getLogger(__name__)

AUDIT_LOG_TYPE = "type.googleapis.com/google.cloud.audit.AuditLog"
AUDIT_LOG_NAMES = (
    "cloudaudit.googleapis.com%2Factivity",
    "cloudaudit.googleapis.com%2Fdata_access",
)


def is_gke_log_entry(document: Any) -> bool:
    """A Cloud Audit Logs entry of a GKE cluster (the plugin's isValidLogEntry)."""
    if not isinstance(document, dict) or not isinstance(document.get("protoPayload"), dict):
        return False
    resource = document.get("resource")
    return (
        str(document.get("logName", "")).endswith(AUDIT_LOG_NAMES)
        and isinstance(resource, dict)
        and resource.get("type") == "k8s_cluster"
    )


def object_reference(resource_name: str) -> dict[str, str] | None:
    """`core/v1/namespaces/default/pods/nginx[/exec]` -> an audit ObjectReference."""
    if not resource_name:
        return None
    parts = resource_name.split("/")
    namespaced = len(parts) > 2 and parts[2] == "namespaces"
    if namespaced and len(parts) >= 5:
        keys = ("apiGroup", "apiVersion", "", "namespace", "resource", "name", "subresource")
    elif len(parts) == 4 or (len(parts) >= 5 and not namespaced):
        # four parts are group/version/resource/name even for "core/v1/namespaces/foo"
        keys = ("apiGroup", "apiVersion", "resource", "name", "subresource")
    else:
        return None
    reference = {key: part for key, part in zip(keys, parts, strict=False) if key}
    return reference


def _status(verb: str, reference: dict[str, str] | None) -> dict[str, Any]:
    if reference is not None and reference.get("subresource") in ("attach", "exec"):
        text, code = "Switching Protocols (inferred)", 101
    elif verb == "create":
        text, code = "Created (inferred)", 201
    else:
        text, code = "OK (inferred)", 200
    return {"metadata": {}, "status": text, "message": text, "code": code}


def _micro_time(text: str) -> str:
    """metav1.MicroTime's JSON form: UTC with microseconds."""
    ns = parse_rfc3339_ns(text)
    seconds, nanos = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos // 1000:06d}Z"


def to_audit_event(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The audit Event of a GKE log entry, or None (logged) for entries the plugin drops."""
    payload = entry["protoPayload"]
    if payload.get("@type") != AUDIT_LOG_TYPE:
        log.warning("unsupported payload type: %s", payload.get("@type"))
        return None
    if payload.get("serviceName") != "k8s.io":
        log.warning(
            "dropped log entry with unrecognised service name (insertId=%s)", entry.get("insertId")
        )
        return None
    try:
        timestamp = _micro_time(entry.get("receiveTimestamp") or entry["timestamp"])
    except (KeyError, ValueError) as error:
        log.warning(
            "dropped log entry without a valid time (insertId=%s): %s", entry.get("insertId"), error
        )
        return None
    verb = str(payload.get("methodName", "")).rsplit(".", 1)[-1]
    resource_name = str(payload.get("resourceName", ""))
    reference = object_reference(resource_name)
    exec_or_attach = reference is not None and reference.get("subresource") in ("attach", "exec")
    metadata = payload.get("requestMetadata") or {}
    annotations = {**(entry.get("labels") or {}), **(entry["resource"].get("labels") or {})}
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Request" if exec_or_attach else "RequestResponse",
        "auditID": entry.get("insertId", ""),
        "stage": "ResponseStarted" if exec_or_attach else "ResponseComplete",
        "requestURI": f"/{resource_name}",
        "verb": verb,
        "user": {"username": (payload.get("authenticationInfo") or {}).get("principalEmail", "")},
        "sourceIPs": [metadata.get("callerIp", "")],
        "userAgent": metadata.get("callerSuppliedUserAgent", ""),
        "responseStatus": _status(verb, reference),
        "requestReceivedTimestamp": timestamp,
        "stageTimestamp": timestamp,
        "annotations": annotations,
    }
    if reference is not None:
        event["objectRef"] = reference
    for key, member in (("request", "requestObject"), ("response", "responseObject")):
        if isinstance(payload.get(key), dict):
            event[member] = payload[key]
    return event
