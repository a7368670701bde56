"""Deploy files: the Helm chart renders to valid Kubernetes objects, its falconet.yaml is a valid
falconet configuration, and the systemd units pass `systemd-analyze verify` with command lines
falconet's CLI accepts.

helm is not installable here (no package in the mirrors). The chart's templates are therefore
kept to a small, documented vocabulary (docs/deploy.md): `.Values`/`.Release`/`.Chart` lookups,
`| quote`, `| default X`, `toYaml X | nindent N`, `if`/`else`/`end`, and `{{-` trimming. The
renderer below implements exactly that vocabulary with Go template semantics and rejects any
other action, so a template that needs real helm fails here instead of being rendered wrongly;
`helm template`/`helm lint` remain to be run where helm exists. The rendered objects are
validated against the Kubernetes OpenAPI schemas shipped by kubernetes-validate (strict: unknown
fields are errors).
"""

from __future__ import annotations

import re
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
ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


class UnsupportedTemplate(Exception):
    pass


def lookup(path: str, scope: dict[str, Any]) -> Any:
    if not path.startswith("."):
        if path.startswith('"') and path.endswith('"'):
            return path[1:-1]
        raise UnsupportedTemplate(f"unsupported operand {path!r}")
    value: Any = scope
    for part in path[1:].split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def to_yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True).rstrip("\n")


def evaluate(expression: str, scope: dict[str, Any]) -> Any:
    stages = [s.strip() for s in expression.split("|")]
    first = stages[0].split()
    if first[0] == "toYaml" and len(first) == 2:
        value: Any = to_yaml(lookup(first[1], scope))
    elif len(first) == 1:
        value = lookup(first[0], scope)
    else:
        raise UnsupportedTemplate(f"unsupported expression {expression!r}")
    for stage in stages[1:]:
        words = stage.split()
        if words == ["quote"]:
            value = '"' + str(value) + '"'
        elif words[0] == "default" and len(words) == 2:
            value = value if value not in (None, "", [], {}, False) else lookup(words[1], scope)
        elif words[0] == "nindent" and len(words) == 2:
            pad = " " * int(words[1])
            lines = str(value).split("\n")
            value = "\n" + "\n".join(pad + line if line else line for line in lines)
        else:
            raise UnsupportedTemplate(f"unsupported pipeline stage {stage!r}")
    return value


def render(text: str, scope: dict[str, Any]) -> str:
    """Go text/template semantics for the documented vocabulary (see module docstring)."""
    out: list[str] = []
    stack: list[tuple[bool, bool]] = []  # (emitting before this if, this branch emits)
    position = 0
    for match in ACTION.finditer(text):
        literal = text[position : match.start()]
        if match.group(1):
            literal = literal.rstrip(" \t\n")
        if all(branch for _, branch in stack):
            out.append(literal)
        position = match.end()
        if match.group(3):
            while position < len(text) and text[position] in " \t\n":
                position += 1
        action = match.group(2)
        words = action.split(None, 1)
        if words[0] == "if":
            value = evaluate(words[1], scope)
            stack.append((True, value not in (None, "", [], {}, False, 0)))
        elif action == "else":
            outer, branch = stack.pop()
            stack.append((outer, not branch))
        elif action == "end":
            stack.pop()
        elif all(branch for _, branch in stack):
            value = evaluate(action, scope)
            out.append("" if value is None else _go_text(value))
    if stack:
        raise UnsupportedTemplate("unterminated if")
    out.append(text[position:])
    return "".join(out)


def _go_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render_chart(values: dict[str, Any]) -> list[dict[str, Any]]:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    scope = {
        "Values": values,
        "Release": {"Name": "falconet", "Namespace": "security"},
        "Chart": {"Name": chart["name"], "AppVersion": chart["appVersion"]},
    }
    objects = []
    for template in sorted((CHART / "templates").glob("*.yaml")):
        rendered = render(template.read_text(), scope)
        objects += [doc for doc in yaml.safe_load_all(rendered) if doc]
    return objects


def default_values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


@pytest.fixture(scope="module")
def validate() -> Any:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    return lambda obj: kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("credentials", ["", "registry-pull"])
@pytest.mark.parametrize("privileged", [False, True])
def test_chart_renders_valid_kubernetes_objects(
    validate: Any, credentials: str, privileged: bool
) -> None:
    values = default_values()
    values["registryCredentials"]["existingSecret"] = credentials
    values["securityContext"]["privileged"] = privileged
    objects = render_chart(values)
    assert sorted(o["kind"] for o in objects) == ["ConfigMap", "DaemonSet", "Service"]
    for obj in objects:
        validate(obj)
    daemonset = next(o for o in objects if o["kind"] == "DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    container = pod["containers"][0]
    assert container["securityContext"]["privileged"] is privileged
    assert set(container["securityContext"]["capabilities"]["add"]) == {
        "BPF",
        "PERFMON",
        "SYS_RESOURCE",
        "SYS_PTRACE",
    }
    host_paths = {v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert {"/sys/kernel/tracing", "/lib/modules"} <= host_paths
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["image"] == "ghcr.io/falconet/falconet:0.1.0"
    secrets = [v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v]
    assert secrets == ([credentials] if credentials else [])


def test_chart_falconet_yaml_is_a_valid_falconet_configuration(tmp_path: Path) -> None:
    from feeds.config import load_config

    values = default_values()
    values["config"]["artifact"]["follow"]["compliance"] = ["pci-dss:10.2"]
    configmap = next(o for o in render_chart(values) if o["kind"] == "ConfigMap")
    path = tmp_path / "falconet.yaml"
    path.write_text(configmap["data"]["falconet.yaml"])
    config = load_config(str(path))
    assert config["artifact.follow.refs"] == ["falconet-rules"]
    assert config["artifact.follow.compliance"] == ["pci-dss:10.2"]
    assert config["verify.require"] is True


def test_renderer_refuses_what_it_does_not_implement() -> None:
    with pytest.raises(UnsupportedTemplate):
        render('{{ include "x" . }}', {})
    with pytest.raises(UnsupportedTemplate):
        render("{{ range .Values.x }}{{ end }}", {"Values": {"x": [1]}})


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
    daemonset = next(o for o in render_chart(default_values()) if o["kind"] == "DaemonSet")
    args = daemonset["spec"]["template"]["spec"]["containers"][0]["args"]
    _assert_command_line_parses(args)
