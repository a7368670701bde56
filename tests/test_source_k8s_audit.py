"""k8s_audit extraction on the upstream audit events: the values the k8saudit plugin gives
(expected values read off the event JSON by hand, following plugins/k8saudit extract.go)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.sources.formats import EventFactory
from engine.sources.json_event import JsonEvent
from engine.sources.readers import read_events
from tests.support.source_fields import extract

SOURCE = "k8s_audit"


def event_of(shared_dir: Path, name: str, verb: str = "create") -> JsonEvent:
    """The file's first event with that verb (the files hold a few: RequestReceived, ...), one
    with a request object when there is one."""
    events = list(read_events(SOURCE, shared_dir / "upstream-events" / "k8s_audit" / name))
    matching = [e for e in events if e.data.get("verb") == verb]
    with_object = [e for e in matching if "requestObject" in e.data]
    return (with_object or matching)[0]


def field(event: JsonEvent, name: str) -> object:
    return extract(SOURCE, name, event)


def test_request_metadata(shared_dir: Path) -> None:
    event = event_of(shared_dir, "exec_pod.json")
    assert field(event, "ka.verb") == "create"
    assert field(event, "ka.target.resource") == "pods"
    assert field(event, "ka.target.subresource") == "exec"
    assert field(event, "ka.target.name") == "nginx-deployment-7998647bdf-phvq7"
    # the first value of a repeated query parameter; absent parameters are not extracted
    assert field(event, "ka.uri.param[command]") == "bash"
    assert field(event, "ka.uri.param[container]") == "nginx1"
    assert field(event, "ka.uri.param[nosuch]") is None
    # a pod subresource is not a pod: no ka.target.pod.name
    assert field(event, "ka.target.pod.name") is None
    assert field(event, "jevt.value[/objectRef/subresource]") == "exec"


def test_containers_lists_and_index_arguments(shared_dir: Path) -> None:
    event = event_of(shared_dir, "create_nginx_pod_privileged_2nd_container.json")
    assert field(event, "ka.req.pod.containers.image") == ("nginx", "mysql:latest")
    assert field(event, "ka.req.pod.containers.image.repository") == ("nginx", "mysql")
    assert field(event, "ka.req.pod.containers.image[1]") == ("mysql:latest",)
    assert field(event, "ka.req.pod.containers.image[2]") is None
    # JSON booleans render as their JSON text
    assert field(event, "ka.req.pod.containers.privileged") == ("false", "true")
    assert field(event, "ka.req.container.privileged") == "true"
    assert field(event, "ka.req.container.image") == "nginx"
    assert field(event, "ka.req.pod.containers.name") == ("nginx1", "mysql")
    # no container sets runAsUser and neither does the pod: the effective uid is 0
    assert field(event, "ka.req.pod.containers.eff_run_as_user") == ("0", "0")
    # nothing to list: an empty list reads as "not extracted", as in libsinsp
    assert field(event, "ka.req.pod.containers.run_as_user") is None
    assert field(event, "ka.req.pod.initContainers.image") is None
    assert field(event, "ka.req.pod.host_network") is None


def test_volumes(shared_dir: Path) -> None:
    event = event_of(shared_dir, "create_nginx_pod_sensitive_mount.json")
    assert field(event, "ka.req.pod.volumes.hostpath") == ("/etc",)
    assert field(event, "ka.req.volume.hostpath[/etc]") == "true"
    assert field(event, "ka.req.volume.hostpath[/e*]") == "true"
    assert field(event, "ka.req.volume.hostpath[/var]") == "false"
    assert field(event, "ka.req.pod.volumes.volume_type") == ("hostPath",)


def test_bindings_and_objects(shared_dir: Path) -> None:
    event = event_of(shared_dir, "attach_cluster_admin_role.json")
    assert field(event, "ka.req.binding.role") == "cluster-admin"
    assert field(event, "ka.req.binding.subjects.user_names") == ("minikube",)
    assert field(event, "ka.req.binding.subjects.group_names") is None
    # objects render as compact JSON text, keys in document order
    assert field(event, "ka.req.binding.subjects") == (
        '{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"minikube"}',
    )
    configmap = event_of(shared_dir, "create_configmap_sensitive_values.json")
    obj = field(configmap, "ka.req.configmap.obj")
    assert isinstance(obj, str) and "aws_secret_access_key" in obj
    assert field(configmap, "ka.req.configmap.name") == "my-config"


def test_service_fields(shared_dir: Path) -> None:
    event = event_of(shared_dir, "create_nginx_service_nodeport.json")
    assert field(event, "ka.req.service.type") == "NodePort"
    # the ports array is the last path step, so it is one value (its JSON text), as upstream
    assert field(event, "ka.req.service.ports") == (
        '[{"nodePort":30080,"port":80,"protocol":"TCP","targetPort":80}]',
    )


def test_user_and_time(shared_dir: Path) -> None:
    event = event_of(shared_dir, "anonymous_creates_namespace_foo.json")
    assert field(event, "ka.user.name") == "system:anonymous"
    assert field(event, "ka.auth.decision") == "allow"
    assert field(event, "jevt.value[/stage]") == "ResponseComplete"
    # the event time is the stageTimestamp, to the microsecond the apiserver wrote
    assert event.data["stageTimestamp"] == "2018-10-25T13:58:49.736141Z"
    assert field(event, "evt.time.iso8601") == "2018-10-25T13:58:49.736141000Z"
    assert field(event, "jevt.rawtime") == str(event.time)
    assert field(event, "evt.type") == "pluginevent"


def _pod(containers: list[dict], **spec: object) -> dict:
    return {
        "kind": "Event",
        "auditID": "x",
        "stageTimestamp": "2024-01-01T00:00:00Z",
        "requestObject": {"spec": {"containers": containers, **spec}},
    }


def test_quirks_kept_from_the_plugin() -> None:
    factory = EventFactory(SOURCE)
    (event,) = factory.from_document(
        _pod(
            [
                {"image": "registry:5000/team/app@sha256:abc", "ports": [{"containerPort": 80}]},
                {"image": "x", "command": ["sh", "-c"], "securityContext": {"runAsUser": 7}},
            ],
            securityContext={"runAsUser": 1000},
        )
    )
    # the repository is cut at the first ":" (a registry port too), as upstream does
    assert field(event, "ka.req.pod.containers.image.repository") == ("registry", "x")
    # without hostPort, the containerPort counts
    assert field(event, "ka.req.pod.containers.host_port") == ("80",)
    # commands are joined; containers without one are skipped
    assert field(event, "ka.req.pod.containers.command") == ("sh -c",)
    # upstream reads containers[*].runAsUser and spec.runAsUser (outside securityContext), so
    # the effective uid stays "0" here; kept for identical rule results
    assert field(event, "ka.req.pod.containers.eff_run_as_user") == ("0", "0")
    assert field(event, "ka.req.pod.containers.run_as_user") == ("7",)
    assert field(event, "ka.req.pod.run_as_user") == "1000"


def test_json_without_audit_id_has_no_ka_fields_but_json_fields() -> None:
    event = JsonEvent({"kind": "Event", "verb": "get"}, 0, SOURCE)
    assert field(event, "ka.verb") is None
    assert field(event, "jevt.value[/verb]") == "get"
    assert field(event, "json.value[/nosuch]") is None


@pytest.mark.parametrize(
    ("document", "count"),
    [
        ({"kind": "EventList", "items": [_pod([]), _pod([])]}, 2),
        ([_pod([]), {"kind": "EventList", "items": [_pod([])]}], 2),
        (_pod([]), 1),
    ],
)
def test_payload_shapes(document: object, count: int) -> None:
    assert len(list(EventFactory(SOURCE).from_document(document))) == count


def test_events_without_stage_timestamp_are_dropped() -> None:
    factory = EventFactory(SOURCE)
    bad = {"kind": "Event", "auditID": "y"}
    events = list(factory.from_document({"kind": "EventList", "items": [bad, _pod([])]}))
    assert [e.data["auditID"] for e in events] == ["x"]
    assert factory.dropped == 1
    assert [e.num for e in events] == [1]


def test_target_pod_name_is_the_created_pod() -> None:
    document = {
        **_pod([]),
        "objectRef": {"resource": "pods", "namespace": "default"},
        "responseObject": {"metadata": {"name": "web-7d9f"}},
    }
    (event,) = EventFactory(SOURCE).from_document(document)
    assert field(event, "ka.target.pod.name") == "web-7d9f"
    assert field(event, "ka.resp.name") == "web-7d9f"
