"""falconet's image (deploy/image): built with podman from an mmdebstrap Debian base, then used
as the chart uses it: the CLI runs, the embedded feed installs offline, the engine detects on a
replay, and bcc compiles the probe inside the image against the node's mounted headers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.podman
IMAGE = "localhost/falconet:test"
RULE = """\
- rule: Secret read in prod
  desc: test rule
  condition: ka.verb=get and ka.target.resource=secrets
  output: secret read (user=%ka.user.name)
  priority: WARNING
  source: k8s_audit
"""
EVENT = {
    "kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "a1", "level": "Request",
    "stage": "ResponseComplete", "verb": "get", "user": {"username": "mallory"},
    "objectRef": {"resource": "secrets", "namespace": "prod", "name": "db"},
    "requestReceivedTimestamp": "2026-12-08T00:00:00.000000Z",
    "stageTimestamp": "2026-12-08T00:00:00.100000Z", "responseStatus": {"code": 200},
}  # fmt: skip


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "building the image needs root"
    for tool in ("podman", "mmdebstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make install adds it)"
    return None


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    built = subprocess.run(
        [str(REPO_ROOT / "deploy" / "image" / "build.sh"), "test"],
        capture_output=True, text=True, timeout=1200, env={**os.environ, "PYTHON": sys.executable},
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    yield IMAGE


def podman_run(
    image: str, *args: str, options: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["podman", "run", "--rm", "--network=none", *options, image, *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_cli_runs_in_the_image(image: str) -> None:
    result = podman_run(image, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("falconet ")
    assert podman_run(image, "bpf", "--help").returncode == 0


def test_the_embedded_feed_installs_offline_in_the_image(image: str) -> None:
    result = podman_run(image, "artifact", "install", "-o", "json")
    assert result.returncode == 0, result.stderr
    names = {a["name"] for a in json.loads(result.stdout)["artifacts"]}
    assert "falconet-rules" in names


def test_the_engine_detects_in_the_image(image: str, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULE)
    (tmp_path / "events.json").write_text(json.dumps(EVENT) + "\n")
    result = podman_run(
        image, "run", "--source", "k8s_audit", "--replay", "/data/events.json",
        "-r", "/data/rules.yaml", "-o", "json", options=("-v", f"{tmp_path}:/data:ro,Z"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    alert = json.loads(result.stdout.splitlines()[0])
    assert alert["rule"] == "Secret read in prod"
    assert alert["output_fields"]["ka.user.name"] == "mallory"


def test_bcc_compiles_the_probe_in_the_image(image: str) -> None:
    """With the node's /lib/modules, /usr/src and /sys/kernel mounted, as the chart mounts them."""
    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("no BTF on this kernel")
    mounts = (
        "--privileged", "--pid=host",
        "-v", "/lib/modules:/lib/modules:ro", "-v", "/usr/src:/usr/src:ro",
        "-v", "/sys/kernel:/sys/kernel",
    )  # fmt: skip
    result = podman_run(image, "bpf", "check", "--no-repair", options=mounts)
    assert result.returncode == 0, result.stdout + result.stderr
