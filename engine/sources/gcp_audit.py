"""The `gcp_auditlog` source: Cloud Audit Log entries (LogEntry with an AuditLog protoPayload)
with the gcpaudit plugin's `gcp.*` fields (plugins/gcpaudit/pkg/gcpaudit/extract.go).

Where upstream reads a JSON object or array with GetStringBytes (so gcp.authorizationInfo,
gcp.request and gcp.policyDelta always read ""), falconet renders it as compact JSON text, which
is what the field descriptions ("(JSON)") and the rules' `contains` tests expect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.fields import FieldCatalog, register_source
from engine.sources import provide_plugin
from engine.sources.formats import RecordFormat, register_format, rfc3339_at, single_or_array
from engine.sources.json_source import plugin_catalog
from engine.sources.jsonpath import MISSING, as_text, getter, string_or_empty

SOURCE = "gcp_auditlog"
PLUGIN = "gcpaudit"
PLUGIN_VERSION = "0.8.1"

Data = dict[str, Any]


def _at(*keys: str) -> Callable[[Data], str | None]:
    get = getter(*keys)

    def extract(data: Data) -> str | None:
        value = get(data)
        if value is MISSING:
            return None
        return as_text(value) if type(value) in (dict, list) else string_or_empty(value)

    return extract


_resource_type = getter("resource", "type")
_bucket_delta = _at("protoPayload", "serviceData", "policyDelta", "bindingDeltas")
_dataset_delta = _at("protoPayload", "metadata", "datasetChange", "bindingDeltas")


def policy_delta(data: Data) -> str | None:
    if _resource_type(data) == "gcs_bucket":
        return _bucket_delta(data)
    return _dataset_delta(data)


_label = getter("resource", "labels")


def location(data: Data) -> str | None:
    """The location label, else the region, else the zone without its last two characters."""
    labels = _label(data)
    if type(labels) is not dict:
        return None
    for key in ("location", "region"):
        if key in labels:
            return string_or_empty(labels[key])
    zone = labels.get("zone")
    if type(zone) is str and zone:
        return zone[:-2] if len(zone) > 2 else zone
    return None


def logging_sink(data: Data) -> str | None:
    return (
        _at("resource", "labels", "name")(data) if _resource_type(data) == "logging_sink" else None
    )


def resource_labels(data: Data) -> str | None:
    labels = _label(data)
    return None if labels is MISSING else as_text(labels)


_FIELDS: tuple[tuple[str, str, Callable[[Data], str | None]], ...] = (
    (
        "gcp.user",
        "GCP principal, actor of the action",
        _at("protoPayload", "authenticationInfo", "principalEmail"),
    ),
    ("gcp.callerIP", "Actor's IP", _at("protoPayload", "requestMetadata", "callerIp")),
    (
        "gcp.userAgent",
        "Actor's User Agent",
        _at("protoPayload", "requestMetadata", "callerSuppliedUserAgent"),
    ),
    ("gcp.authorizationInfo", "GCP authorization (JSON)", _at("protoPayload", "authorizationInfo")),
    ("gcp.serviceName", "GCP API service name", _at("protoPayload", "serviceName")),
    ("gcp.policyDelta", "GCP service resource access policy delta", policy_delta),
    ("gcp.request", "GCP API raw request (JSON)", _at("protoPayload", "request")),
    ("gcp.methodName", "GCP API service method executed", _at("protoPayload", "methodName")),
    ("gcp.cloudfunctions.function", "GCF name", _at("resource", "labels", "function_name")),
    ("gcp.cloudsql.databaseId", "GCP SQL database ID", _at("resource", "labels", "database_id")),
    ("gcp.compute.instanceId", "GCE instance ID", _at("resource", "labels", "instance_id")),
    ("gcp.compute.networkId", "GCP network ID", _at("resource", "labels", "network_id")),
    ("gcp.compute.subnetwork", "GCP subnetwork name", _at("resource", "labels", "subnetwork_name")),
    ("gcp.compute.subnetworkId", "GCP subnetwork ID", _at("resource", "labels", "subnetwork_id")),
    ("gcp.dns.zone", "GCP DNS zone", _at("resource", "labels", "zone_name")),
    ("gcp.iam.serviceAccount", "GCP service account", _at("resource", "labels", "email_id")),
    ("gcp.iam.serviceAccountId", "GCP IAM unique ID", _at("resource", "labels", "unique_id")),
    ("gcp.location", "GCP region", location),
    ("gcp.logging.sink", "GCP logging sink", logging_sink),
    ("gcp.projectId", "GCP project ID", _at("resource", "labels", "project_id")),
    ("gcp.resourceName", "GCP resource name", _at("protoPayload", "resourceName")),
    ("gcp.resourceType", "GCP resource type", _at("resource", "type")),
    ("gcp.resourceLabels", "GCP resource labels (JSON)", resource_labels),
    ("gcp.storage.bucket", "GCP bucket name", _at("resource", "labels", "bucket_name")),
    ("gcp.time", "Timestamp of the event in RFC3339 format", _at("timestamp")),
)


def build_catalog() -> FieldCatalog:
    return plugin_catalog(SOURCE, PLUGIN, _FIELDS)


register_source(SOURCE, build_catalog)
# Log entries carry their time; the plugin (reading Pub/Sub) stamps arrival, which we fall back to.
register_format(RecordFormat(SOURCE, single_or_array, rfc3339_at("timestamp", or_arrival=True)))
provide_plugin(PLUGIN, PLUGIN_VERSION)
