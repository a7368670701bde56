"""The `k8s_audit` source: Kubernetes audit Event objects, with the k8saudit plugin's `ka.*` fields
(plus the json plugin's `json.*`/`jevt.*` and the generic `evt.*`, as Falco offers them on this
source). Extraction follows plugins/k8saudit/pkg/k8saudit/extract.go, including its quirks
(documented in docs/sources.md): values are strings, non-string JSON renders as compact JSON, empty
lists count as "cannot be extracted", and index arguments pick one element of every array met on
the way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from engine.fields import Extractor, FieldCatalog, FieldSpec, register_source
from engine.sources import provide_plugin
from engine.sources.formats import InputFormatError, RecordFormat, register_format, rfc3339_at
from engine.sources.json_event import (
    JsonEvent,
    add_shared,
    index_argument,
    memoized,
)
from engine.sources.json_source import plugin_catalog
from engine.sources.jsonpath import MISSING, as_text, getter, text_of, to_json_text
from engine.sources.k8s_audit_exports import unwrap_export
from engine.sources.k8s_audit_gke import is_gke_log_entry, to_audit_event

SOURCE = "k8s_audit"
PLUGIN = "k8saudit"
PLUGIN_VERSION = "0.18.0"
# Managed-cluster variants whose events and fields are the same audit Events.
ALTERNATIVE_PLUGINS = {"k8saudit-eks": "0.12.0", "k8saudit-gke": "0.9.0", "k8saudit-aks": "0.6.0"}

CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


def _listed(values: list[str] | None) -> tuple[str, ...] | None:
    # libsinsp treats a plugin field extracted with zero values as not extracted.
    return tuple(values) if values else None


# --- value helpers (mirroring extract.go) ---


def values_recursive(value: Any, index: int | None, keys: tuple[str, ...]) -> list[Any] | Any:
    """getValuesRecursive: follow `keys`; every array met is expanded (MISSING for elements
    lacking the rest of the path) or, with an index, narrowed to that element."""
    for position, key in enumerate(keys):
        if type(value) is list:
            if index is None:
                found: list[Any] = []
                rest = keys[position:]
                for item in value:
                    sub = values_recursive(item, index, rest)
                    if sub is MISSING:
                        found.append(MISSING)
                    else:
                        found.extend(sub)
                return found
            if index >= len(value):
                return MISSING
            value = value[index]
        if key:
            # fastjson's Get: object member, or array element for a decimal key
            if type(value) is dict:
                value = value.get(key, MISSING)
            elif type(value) is list and key.isdecimal() and int(key) < len(value):
                value = value[int(key)]
            else:
                return MISSING
            if value is MISSING:
                return MISSING
    return [value]


def strings_skip_missing(values: list[Any]) -> list[str]:
    return [text for text in map(as_text, values) if text is not None]


def strings_or_none(values: list[Any]) -> list[str] | None:
    """arrayAsStrings: any missing element fails the whole extraction."""
    if any(value is MISSING for value in values):
        return None
    return [text_of(value) for value in values]


# --- extractor factories ---


def _guarded(extract: Callable[[Any], Any]) -> Extractor:
    # The plugin extracts its own fields only from JSON with an auditID.
    def guarded(event: JsonEvent) -> Any:
        data = event.data
        if type(data) is not dict or "auditID" not in data:
            return None
        return extract(data)

    return memoized(guarded)


def _from_keys(*keys: str, is_list: bool = False) -> Extractor:
    """extractFromKeys: one value as text, or (list fields) a JSON array as a tuple of texts."""
    get = getter(*keys)
    if is_list:

        def extract_list(data: Any) -> tuple[str, ...] | None:
            value = get(data)
            if type(value) is not list:
                return None
            return _listed([text_of(item) for item in value])

        return _guarded(extract_list)

    def extract_text(event: JsonEvent) -> str | None:
        # The hot path of most ka.* fields: guard, lookup and rendering in one call.
        data = event.data
        if type(data) is not dict or "auditID" not in data:
            return None
        value = get(data)
        if type(value) is str:
            return value
        return None if value is MISSING else to_json_text(value)

    return memoized(extract_text)


def _recursive_strings(index: int | None, *keys: str) -> Extractor:
    path = tuple(keys)

    def extract(data: Any) -> tuple[str, ...] | None:
        found = values_recursive(data, index, path)
        return None if found is MISSING else _listed(strings_skip_missing(found))

    return _guarded(extract)


def _rules_field(index: int | None, *keys: str) -> Extractor:
    """extractRulesField: flatten the arrays found at requestObject.rules[*].<keys>."""
    path = ("requestObject", "rules", *keys)

    def extract(data: Any) -> tuple[str, ...] | None:
        found = values_recursive(data, index, path)
        if found is MISSING:
            return None
        texts: list[str] = []
        for value in found:
            if type(value) is list:
                texts.extend(strings_skip_missing(value))
        return _listed(texts)

    return _guarded(extract)


def _subject_names(kind: str) -> Extractor:
    namespaced = kind == "NamespacedServiceAccount"
    wanted = "ServiceAccount" if namespaced else kind
    get_subjects = getter("requestObject", "subjects")

    def extract(data: Any) -> tuple[str, ...] | None:
        subjects = get_subjects(data)
        if subjects is MISSING:
            return None  # an empty list: not extracted
        if type(subjects) is not list:
            return None
        names: list[str] = []
        for subject in subjects:
            if type(subject) is not dict or "kind" not in subject or "name" not in subject:
                continue
            if as_text(subject["kind"]) != wanted:
                continue
            name = as_text(subject["name"])
            if namespaced:
                namespace = as_text(subject.get("namespace", MISSING))
                if namespace is None:
                    continue
                name = f"{namespace}:{name}"
            names.append(name)
        return _listed(names)

    return _guarded(extract)


def _container_values(data: Any, container_list: str, index: int | None, *keys: str) -> Any:
    return values_recursive(data, index, ("requestObject", "spec", container_list, *keys))


def _joined_arrays(container_list: str, index: int | None, key: str) -> Extractor:
    """command/args: each container's string array joined with spaces."""

    def extract(data: Any) -> tuple[str, ...] | None:
        found = _container_values(data, container_list, index, key)
        if found is MISSING:
            return None
        joined: list[str] = []
        for value in found:
            if value is MISSING:
                continue
            if type(value) is not list or any(type(item) is not str for item in value):
                return None  # ErrExtractWrongType
            joined.append(" ".join(value))
        return _listed(joined)

    return _guarded(extract)


def _images(data: Any, container_list: str, index: int | None) -> list[str] | None:
    found = _container_values(data, container_list, index, "image")
    return None if found is MISSING else strings_or_none(found)


def repository_of(image: str) -> str:
    """The plugin's repository split: up to the first ":" then the first "@" (so a registry
    port cuts it short: "registry:5000/x" -> "registry", as upstream does)."""
    return image.split(":", 1)[0].split("@", 1)[0]


def _image_field(container_list: str, index: int | None, repository: bool) -> Extractor:
    def extract(data: Any) -> tuple[str, ...] | None:
        images = _images(data, container_list, index)
        if images is None:
            return None
        return _listed([repository_of(image) for image in images] if repository else images)

    return _guarded(extract)


def _names(container_list: str, index: int | None) -> Extractor:
    def extract(data: Any) -> tuple[str, ...] | None:
        found = _container_values(data, container_list, index, "name")
        return None if found is MISSING else _listed(strings_or_none(found) or [])

    return _guarded(extract)


def _host_ports(container_list: str, index: int | None) -> Extractor:
    def extract(data: Any) -> tuple[str, ...] | None:
        found = _container_values(data, container_list, index, "ports")
        if found is MISSING:
            return None
        ports: list[str] = []
        for value in found:
            if value is MISSING:
                continue
            if type(value) is not list:
                return None
            for port in value:
                if type(port) is not dict:
                    continue
                # With hostNetwork the containerPort is the host port.
                chosen = port.get("hostPort", port.get("containerPort", MISSING))
                if chosen is not MISSING:
                    ports.append(text_of(chosen))
        return _listed(ports)

    return _guarded(extract)


def _security_context(container_list: str, index: int | None, *keys: str) -> Extractor:
    return _recursive_strings(
        index, "requestObject", "spec", container_list, "securityContext", *keys
    )


def _effective_id(container_list: str, index: int | None, key: str) -> Extractor:
    """eff_run_as_user/group: the container's value, else the pod's, else "0"."""
    pod_value = getter("requestObject", "spec", key)

    def extract(data: Any) -> tuple[str, ...] | None:
        pod = pod_value(data)
        default = "0" if pod is MISSING else as_text(pod)
        found = _container_values(data, container_list, index, key)
        if found is MISSING:
            return None
        return _listed([default if value is MISSING else text_of(value) for value in found])

    return _guarded(extract)


# (suffix, description, factory(list, index))
_CONTAINER_FIELDS: tuple[tuple[str, str, Callable[[str, int | None], Extractor]], ...] = (
    ("name", "names", _names),
    ("image", "images", lambda lst, i: _image_field(lst, i, False)),
    (
        "image.repository",
        "image repositories (image without tag/digest)",
        lambda lst, i: _image_field(lst, i, True),
    ),
    ("command", "commands", lambda lst, i: _joined_arrays(lst, i, "command")),
    ("args", "args", lambda lst, i: _joined_arrays(lst, i, "args")),
    ("privileged", "privileged flags", lambda lst, i: _security_context(lst, i, "privileged")),
    (
        "allow_privilege_escalation",
        "allowPrivilegeEscalation flags",
        lambda lst, i: _security_context(lst, i, "allowPrivilegeEscalation"),
    ),
    (
        "read_only_fs",
        "readOnlyRootFilesystem flags",
        lambda lst, i: _security_context(lst, i, "readOnlyRootFilesystem"),
    ),
    ("run_as_user", "runAsUser uids", lambda lst, i: _security_context(lst, i, "runAsUser")),
    (
        "eff_run_as_user",
        "effective initial uids (pod's runAsUser, else 0)",
        lambda lst, i: _effective_id(lst, i, "runAsUser"),
    ),
    ("run_as_group", "runAsGroup gids", lambda lst, i: _security_context(lst, i, "runAsGroup")),
    (
        "eff_run_as_group",
        "effective initial gids (pod's runAsGroup, else 0)",
        lambda lst, i: _effective_id(lst, i, "runAsGroup"),
    ),
    ("proc_mount", "procMount types", lambda lst, i: _security_context(lst, i, "procMount")),
    (
        "add_capabilities",
        "added capabilities",
        lambda lst, i: _security_context(lst, i, "capabilities", "add"),
    ),
    ("host_port", "hostPort values (containerPort when no hostPort)", _host_ports),
)


def _add_container_fields(catalog: FieldCatalog) -> None:
    for container_list in CONTAINER_LISTS:
        for suffix, what, factory in _CONTAINER_FIELDS:
            if suffix == "host_port" and container_list == "ephemeralContainers":
                continue  # ephemeral containers have no ports
            spec = FieldSpec(
                f"ka.req.pod.{container_list}.{suffix}",
                "string",
                f"When the request object refers to a pod, the {container_list} {what}.",
                is_list=True,
                arg="optional",
            )
            add_shared(
                catalog,
                spec,
                lambda arg, lst=container_list, make=factory: make(lst, index_argument(arg)),
            )


# --- single-value and special fields ---

_ANNOTATION = "annotations"
# (name, description, keys)
_KEYED_FIELDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("ka.auditid", "The unique id of the audit event", ("auditID",)),
    ("ka.stage", "Stage of the request (e.g. RequestReceived, ResponseComplete, etc.)", ("stage",)),
    (
        "ka.auth.decision",
        "The authorization decision",
        (_ANNOTATION, "authorization.k8s.io/decision"),
    ),
    ("ka.auth.reason", "The authorization reason", (_ANNOTATION, "authorization.k8s.io/reason")),
    (
        "ka.auth.openshift.decision",
        "The authentication decision of the openshift apiserver extension",
        (_ANNOTATION, "authentication.openshift.io/decision"),
    ),
    (
        "ka.validations.admission.policy.failure",
        "The validation failure reason from a Validation Admission Policy",
        (_ANNOTATION, "validation.policy.admission.k8s.io/validation_failure"),
    ),
    (
        "ka.security.pod.violations",
        "The violation reason for pod security policy",
        (_ANNOTATION, "pod-security.kubernetes.io/audit-violations"),
    ),
    (
        "ka.auth.openshift.username",
        "The user name performing the openshift authentication operation",
        (_ANNOTATION, "authentication.openshift.io/username"),
    ),
    ("ka.user.name", "The user name performing the request", ("user", "username")),
    ("ka.impuser.name", "The impersonated user name", ("impersonatedUser", "username")),
    ("ka.verb", "The action being performed", ("verb",)),
    ("ka.uri", "The request URI as sent from client to server", ("requestURI",)),
    ("ka.target.name", "The target object name", ("objectRef", "name")),
    ("ka.target.namespace", "The target object namespace", ("objectRef", "namespace")),
    ("ka.target.resource", "The target object resource", ("objectRef", "resource")),
    ("ka.target.subresource", "The target object subresource", ("objectRef", "subresource")),
    (
        "ka.req.binding.role",
        "For a cluster role binding request, the role being linked by the binding",
        ("requestObject", "roleRef", "name"),
    ),
    (
        "ka.req.configmap.name",
        "If the request object refers to a configmap, the configmap name",
        ("objectRef", "name"),
    ),
    (
        "ka.req.configmap.obj",
        "If the request object refers to a configmap, the entire configmap object",
        ("requestObject", "data"),
    ),
    (
        "ka.req.pod.host_ipc",
        "When the request object refers to a pod, the value of the hostIPC flag.",
        ("requestObject", "spec", "hostIPC"),
    ),
    (
        "ka.req.pod.host_network",
        "When the request object refers to a pod, the value of the hostNetwork flag.",
        ("requestObject", "spec", "hostNetwork"),
    ),
    (
        "ka.req.container.host_network",
        "Deprecated alias for ka.req.pod.host_network",
        ("requestObject", "spec", "hostNetwork"),
    ),
    (
        "ka.req.pod.host_pid",
        "When the request object refers to a pod, the value of the hostPID flag.",
        ("requestObject", "spec", "hostPID"),
    ),
    (
        "ka.req.pod.run_as_user",
        "For a pod request, the runAsUser uid in the pod security context",
        ("requestObject", "spec", "securityContext", "runAsUser"),
    ),
    (
        "ka.req.pod.run_as_group",
        "For a pod request, the runAsGroup gid in the pod security context",
        ("requestObject", "spec", "securityContext", "runAsGroup"),
    ),
    (
        "ka.req.pod.fs_group",
        "For a pod request, the fsGroup gid in the pod security context",
        ("requestObject", "spec", "securityContext", "fsGroup"),
    ),
    (
        "ka.req.service.type",
        "When the request object refers to a service, the service type",
        ("requestObject", "spec", "type"),
    ),
    ("ka.resp.name", "The response object name", ("responseObject", "metadata", "name")),
    ("ka.response.code", "The response code", ("responseStatus", "code")),
    (
        "ka.response.reason",
        "The response reason (usually present only for failures)",
        ("responseStatus", "reason"),
    ),
    (
        "ka.useragent",
        "The useragent of the client who made the request to the apiserver",
        ("userAgent",),
    ),
    ("ka.cluster.name", "The name of the k8s cluster", (_ANNOTATION, "cluster_name")),
)

_KEYED_LIST_FIELDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("ka.user.groups", "The groups to which the user belongs", ("user", "groups")),
    (
        "ka.req.binding.subjects",
        "For a cluster role binding request, the subjects (accounts/users) being linked",
        ("requestObject", "subjects"),
    ),
    (
        "ka.req.role.rules",
        "When the request object refers to a role/cluster role, the rules associated with the role",
        ("requestObject", "rules"),
    ),
    (
        "ka.req.pod.supplemental_groups",
        "For a pod request, the supplementalGroups gids in the pod security context",
        ("requestObject", "spec", "securityContext", "supplementalGroups"),
    ),
)


def _uri_param(arg: str | None) -> Extractor:
    key = arg or ""
    get_uri = getter("requestURI")

    def extract(data: Any) -> str | None:
        uri = as_text(get_uri(data))
        if uri is None:
            return None
        values = parse_qs(urlsplit(uri).query, keep_blank_values=True).get(key)
        return values[0] if values else None

    return _guarded(extract)


_response_name = getter("responseObject", "metadata", "name")


def _target_pod_name(data: Any) -> str | None:
    ref = data.get("objectRef")
    if (
        type(ref) is not dict
        or ref.get("resource") != "pods"
        or ref.get("subresource", "") not in ("", None)
    ):
        return None
    return as_text(_response_name(data))


def _first_container(repository: bool) -> Extractor:
    def extract(data: Any) -> str | None:
        images = _images(data, "containers", 0)
        if not images:
            return None
        return repository_of(images[0]) if repository else images[0]

    return _guarded(extract)


def _any_privileged(data: Any) -> str | None:
    found = _container_values(data, "containers", None, "securityContext", "privileged")
    if found is MISSING:
        return None
    return "true" if any(value is True for value in found) else "false"


def _volume_hostpath(arg: str | None) -> Extractor:
    """Deprecated ka.req.volume.hostpath[path]: "true" when some hostPath volume equals the
    argument, or starts with it when the argument ends with "*"."""
    wanted = arg or ""
    prefix = wanted[:-1] if wanted.endswith("*") else None
    path = ("requestObject", "spec", "volumes", "hostPath", "path")

    def extract(data: Any) -> str | None:
        found = values_recursive(data, None, path)
        if found is MISSING:
            return None
        for value in strings_skip_missing(found):
            if value == wanted or (prefix is not None and value.startswith(prefix)):
                return "true"
        return "false"

    return _guarded(extract)


def _volume_types(index: int | None) -> Extractor:
    def extract(data: Any) -> tuple[str, ...] | None:
        found = values_recursive(data, index, ("requestObject", "spec", "volumes", ""))
        if found is MISSING:
            return None
        kinds = [key for value in found if type(value) is dict for key in value if key != "name"]
        return _listed(kinds)

    return _guarded(extract)


def _indexed(
    catalog: FieldCatalog,
    name: str,
    desc: str,
    make: Callable[[int | None], Extractor],
    required: bool = False,
) -> None:
    spec = FieldSpec(name, "string", desc, is_list=True, arg="required" if required else "optional")
    add_shared(catalog, spec, lambda arg: make(index_argument(arg)))


def _add_special_fields(catalog: FieldCatalog) -> None:
    string = "string"
    add_shared(
        catalog,
        FieldSpec(
            "ka.uri.param",
            string,
            "The value of a given query parameter in the uri (ka.uri.param[key])",
            arg="required",
        ),
        _uri_param,
    )
    catalog.add_simple(
        FieldSpec("ka.target.pod.name", string, "The target pod name"), _guarded(_target_pod_name)
    )
    for kind, field in (
        ("User", "user_names"),
        ("ServiceAccount", "serviceaccount_names"),
        ("NamespacedServiceAccount", "serviceaccount_ns_names"),
        ("Group", "group_names"),
    ):
        catalog.add_simple(
            FieldSpec(
                f"ka.req.binding.subjects.{field}",
                string,
                f"For a cluster role binding request, the subject {field.replace('_', ' ')}",
                is_list=True,
            ),
            _subject_names(kind),
        )
    add_shared(
        catalog,
        FieldSpec(
            "ka.req.binding.subject.has_name",
            string,
            'Deprecated, always returns "true". Only provided for backwards compatibility',
            arg="required",
        ),
        lambda arg: _guarded(lambda data: "true"),
    )
    catalog.add_simple(
        FieldSpec(
            "ka.req.container.image", string, "Deprecated: the image of the first container only"
        ),
        _first_container(repository=False),
    )
    catalog.add_simple(
        FieldSpec(
            "ka.req.container.image.repository",
            string,
            "Deprecated: the repository of the first container only",
        ),
        _first_container(repository=True),
    )
    catalog.add_simple(
        FieldSpec(
            "ka.req.container.privileged",
            string,
            'Deprecated: "true" if any container has privileged=true',
        ),
        _guarded(_any_privileged),
    )
    for rules_key in ("apiGroups", "nonResourceURLs", "verbs", "resources"):
        _indexed(
            catalog,
            f"ka.req.role.rules.{rules_key}",
            f"For a role/cluster role request, the {rules_key} of the role's rules",
            lambda index, key=rules_key: _rules_field(index, key),
        )
    _indexed(
        catalog,
        "ka.req.service.ports",
        "When the request object refers to a service, the service's ports",
        lambda index: _recursive_strings(index, "requestObject", "spec", "ports"),
    )
    _indexed(
        catalog,
        "ka.req.pod.volumes.hostpath",
        "When the request object refers to a pod, all hostPath paths specified for all volumes",
        lambda index: _recursive_strings(
            index, "requestObject", "spec", "volumes", "hostPath", "path"
        ),
    )
    add_shared(
        catalog,
        FieldSpec(
            "ka.req.volume.hostpath",
            string,
            "Deprecated: true if a volume uses the host path (or prefix*)",
            arg="required",
        ),
        _volume_hostpath,
    )
    _indexed(
        catalog,
        "ka.req.pod.volumes.flexvolume_driver",
        "When the request object refers to a pod, all flexvolume drivers specified for all volumes",
        lambda index: _recursive_strings(
            index, "requestObject", "spec", "volumes", "flexVolume", "driver"
        ),
    )
    _indexed(
        catalog,
        "ka.req.pod.volumes.volume_type",
        "When the request object refers to a pod, all volume types for all volumes",
        _volume_types,
    )
    _indexed(
        catalog,
        "ka.sourceips",
        "The IP addresses of the client who made the request to the apiserver",
        lambda index: _source_ips(index),
    )


def _source_ips(index: int | None) -> Extractor:
    # Upstream reads sourceIPs through its rules-field helper: under requestObject.rules, which
    # never holds them; we read the event's sourceIPs as the field description promises.
    get = getter("sourceIPs")

    def extract(data: Any) -> tuple[str, ...] | None:
        value = get(data)
        if type(value) is not list:
            return None
        if index is not None:
            value = value[index : index + 1]
        return _listed(strings_skip_missing(value))

    return _guarded(extract)


def build_catalog() -> FieldCatalog:
    catalog = plugin_catalog(SOURCE, PLUGIN)
    for name, desc, keys in _KEYED_FIELDS:
        catalog.add_simple(FieldSpec(name, "string", desc), _from_keys(*keys))
    for name, desc, keys in _KEYED_LIST_FIELDS:
        catalog.add_simple(
            FieldSpec(name, "string", desc, is_list=True), _from_keys(*keys, is_list=True)
        )
    _add_special_fields(catalog)
    _add_container_fields(catalog)
    return catalog


def audit_events(document: Any) -> list[Any]:
    """The audit Events of a payload: one Event, an EventList, or a JSON array of either (the
    shapes the plugin's webhook and file readers accept), or GKE, EKS or AKS log exports."""
    if isinstance(document, list):
        return [event for item in document for event in audit_events(item)]
    if is_gke_log_entry(document):  # a Cloud Logging export of a GKE cluster (k8saudit-gke)
        event = to_audit_event(document)
        return [event] if event is not None else []
    wrapped = unwrap_export(document)  # EKS CloudWatch events, AKS diagnostic records
    if wrapped is not None:
        return audit_events(wrapped)
    kind = document.get("kind") if isinstance(document, dict) else None
    if kind == "EventList" and isinstance(document.get("items"), list):
        return list(document["items"])
    if kind == "Event":
        return [document]
    raise InputFormatError(
        "data not recognized as a k8s audit event",
        hint='expected an audit.k8s.io Event or EventList ("kind": "Event" | "EventList")',
    )


register_source(SOURCE, build_catalog)
# The plugin stamps each event with its stageTimestamp and refuses events without one.
register_format(RecordFormat(SOURCE, audit_events, rfc3339_at("stageTimestamp")))
provide_plugin(PLUGIN, PLUGIN_VERSION)
for _name, _version in ALTERNATIVE_PLUGINS.items():
    provide_plugin(_name, _version)
