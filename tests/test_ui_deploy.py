"""The Helm chart's web UI (ui.enabled): a Deployment and Service beside the DaemonSet, valid
Kubernetes objects, a command line falconet accepts, and the nodes' credentials mounted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.test_deploy import (  # noqa: F401  # fixture
    _assert_command_line_parses,
    default_values,
    render_chart,
    validate,
)


def test_ui_is_off_by_default_and_renders_beside_the_daemonset(
    validate: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    assert not [o for o in render_chart() if "-ui" in o["metadata"]["name"]]
    values = default_values()
    values["ui"]["enabled"] = True
    values["ui"]["postgresPasswordSecret"] = "ui-db"
    objects = render_chart(values, tmp_path)
    assert sorted(o["kind"] for o in objects) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "DaemonSet",
        "Deployment",
        "Service",
        "Service",
        "ServiceAccount",
    ]
    for obj in objects:
        validate(obj)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert {
        "name": "PGPASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "ui-db", "key": "password"}},
    } in container["env"]
    _assert_command_line_parses(container["args"])
    service = next(
        o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "falconet-ui"
    )
    assert service["spec"]["ports"][0]["port"] == 8766
    daemonset = next(o for o in objects if o["kind"] == "DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    assert {"name": "ui-auth", "secret": {"secretName": "falconet-ui-auth"}} in pod["volumes"]
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": "ui-auth", "mountPath": "/etc/falconet-ui", "readOnly": True} in mounts
    node_args = [
        *values["args"],
        "--output-http",
        "http://node:pw@falconet-ui:8766/ingest",
        "--report-to",
        "http://falconet-ui:8766/ingest/status",
        "--report-auth-file",
        "/etc/falconet-ui/auth",
    ]
    _assert_command_line_parses(node_args)
