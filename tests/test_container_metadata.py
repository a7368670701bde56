"""Container and pod metadata from a real runtime: podman (containers.md) with its
Docker-compatible API on a unix socket of the test's own, a container with Kubernetes-style
labels and a privileged one, looked up asynchronously by the resolver and read through the
syscall source's `container.*` and `k8s.*` fields."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from engine.sources.syscall import container_runtime
from engine.sources.syscall.container_runtime import (
    ContainerResolver,
    container_type,
    parse_inspect,
    split_image,
)
from tests.support.source_fields import extract
from tests.support.waiting import wait_for

IMAGE = "localhost/falconet-bbox:1"


@pytest.mark.parametrize(
    ("reference", "parts"),
    [
        ("localhost/falconet-bbox:1", ("localhost/falconet-bbox", "1", "")),
        ("registry:5000/team/app", ("registry:5000/team/app", "", "")),
        ("nginx:1.27@sha256:" + "a" * 64, ("nginx", "1.27", "sha256:" + "a" * 64)),
        ("ghcr.io/x/y@sha256:" + "b" * 64, ("ghcr.io/x/y", "", "sha256:" + "b" * 64)),
    ],
)
def test_image_references_split_as_the_container_plugin_does(reference, parts) -> None:
    assert split_image(reference) == parts


def test_cgroup_paths_name_the_runtime() -> None:
    hexid = "c" * 64
    assert container_type((f"0::/libpod_parent/libpod-{hexid}",)) == "podman"
    assert container_type((f"0::/system.slice/docker-{hexid}.scope",)) == "docker"
    assert container_type((f"0::/kubepods/besteffort/pod1/{hexid}",)) == "containerd"
    assert container_type((f"0::/system.slice/crio-{hexid}.scope",)) == "cri-o"


def test_hostile_answers_are_not_metadata() -> None:
    assert parse_inspect([], "docker") is None
    assert parse_inspect({"Id": 5}, "docker") is None
    info = parse_inspect({"Id": "d" * 64, "Config": {"Labels": ["not", "a", "map"]}}, "docker")
    assert info is not None and info.labels == {} and info.name == ""
    with pytest.raises(ValueError):
        container_runtime.inspect("/nonexistent.sock", "../../etc/passwd")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "running containers with podman needs root here"
    if shutil.which("podman") is None:
        return "podman is not installed (make install adds it)"
    if not Path("/bin/busybox").exists():
        return "busybox-static is not installed (make install adds it)"
    return None


def _podman(*args: str) -> str:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def podman_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("containers")
    root = work / "rootfs"
    (root / "bin").mkdir(parents=True)
    for directory in ("etc", "proc", "sys", "dev", "tmp"):
        (root / directory).mkdir()
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    for applet in ("sh", "sleep", "cat"):
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True, check=True)
    subprocess.run(
        ["podman", "import", "--change", 'CMD ["/bin/sh"]', "-", IMAGE],
        input=tar.stdout, capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    names = [f"falconet-meta-{os.getpid()}-{n}" for n in ("labelled", "privileged")]
    labelled = _podman(
        "run", "-d", "--name", names[0],
        "--label", "io.kubernetes.pod.name=web-1", "--label", "io.kubernetes.pod.namespace=prod",
        "--label", "io.kubernetes.pod.uid=1234-abcd", "--label", "team=<b>sec</b>",
        IMAGE, "sleep", "300",
    )  # fmt: skip
    privileged = _podman("run", "-d", "--name", names[1], "--privileged", IMAGE, "sleep", "300")
    sock = work / "podman.sock"
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{sock}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(sock.exists, timeout=60)
        yield {"socket": str(sock), "labelled": labelled, "privileged": privileged}
    finally:
        service.kill()
        service.wait()
        subprocess.run(["podman", "rm", "-f", "-t", "0", *names], capture_output=True)


def _event(container_id: str, cgroup: str) -> Any:
    return SimpleNamespace(thread=SimpleNamespace(container_id=container_id, cgroups=(cgroup,)))


def test_a_podman_containers_metadata_fills_the_fields(podman_api, monkeypatch) -> None:
    resolver = ContainerResolver((podman_api["socket"],))
    monkeypatch.setattr(container_runtime, "_RESOLVER", resolver)
    full_id = podman_api["labelled"]
    event = _event(full_id[:12], f"0::/libpod_parent/libpod-{full_id}")
    # Before the runtime has answered: absent (the lookup runs on the resolver's thread).
    assert extract("syscall", "container.name", event) is None
    assert resolver.wait_idle()
    assert extract("syscall", "container.name", event) == f"falconet-meta-{os.getpid()}-labelled"
    assert extract("syscall", "container.full_id", event) == full_id
    assert extract("syscall", "container.id", event) == full_id[:12]
    assert extract("syscall", "container.type", event) == "podman"
    assert extract("syscall", "container.image.repository", event) == "localhost/falconet-bbox"
    assert extract("syscall", "container.image.tag", event) == "1"
    assert extract("syscall", "container.image", event) == IMAGE
    assert extract("syscall", "container.privileged", event) is False
    assert extract("syscall", "container.label[team]", event) == "<b>sec</b>"
    assert extract("syscall", "k8s.pod.name", event) == "web-1"
    assert extract("syscall", "k8s.ns.name", event) == "prod"
    assert extract("syscall", "k8s.pod.uid", event) == "1234-abcd"
    assert "io.kubernetes.pod.name:web-1" in extract("syscall", "container.labels", event)
    privileged = podman_api["privileged"]
    other = _event(privileged[:12], f"0::/libpod_parent/libpod-{privileged}")
    extract("syscall", "container.privileged", other)
    assert resolver.wait_idle()
    assert extract("syscall", "container.privileged", other) is True
    assert resolver.stats.answered == 2 and resolver.stats.failures == 0


def test_unknown_containers_and_missing_sockets_read_as_absent(podman_api, tmp_path) -> None:
    resolver = ContainerResolver((str(tmp_path / "missing.sock"), podman_api["socket"]))
    assert resolver.get("0123456789ab") is None
    assert resolver.wait_idle()
    assert resolver.get("0123456789ab") is None  # remembered: not asked again at once
    assert resolver.stats.unknown == 1 and resolver.stats.lookups == 1


RULE = """\
- rule: Passwd read in a container
  desc: a process in a container reads /etc/passwd
  condition: >
    evt.type in (open, openat, openat2) and fd.name = /etc/passwd and container.id != host
  output: >
    passwd read in container (name=%container.name image=%container.image.repository
    pod=%k8s.pod.name ns=%k8s.ns.name privileged=%container.privileged cid=%container.id)
  priority: WARNING
"""


@pytest.mark.usefixtures("live_ebpf_shared")
def test_live_container_activity_carries_the_runtimes_metadata(
    podman_api, tmp_path: Path, falconet_home: Path
) -> None:
    """The live probe sees a process in the labelled container; its alert names the container,
    image and pod, looked up from podman's API while detection went on."""
    import json
    import signal
    import sys

    from tests.conftest import REPO_ROOT
    from tests.support.live_ebpf import skip_reason

    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULE)
    alerts = tmp_path / "alerts.json"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "FALCONET_HOME": str(falconet_home),
           "FALCONET_CONTAINER_SOCKETS": podman_api["socket"]}  # fmt: skip
    run = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", "--source", "syscall", "-r", str(rules),
         "-o", "json", "--output-file", str(alerts), "--no-web"],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    container = podman_api["labelled"]

    def named_alert() -> dict | None:
        # The first reads may come before podman's answer (their fields are <NA>): read again.
        subprocess.run(
            ["podman", "exec", container, "sh", "-c", "cat /etc/passwd >/dev/null; sleep 1"],
            capture_output=True, timeout=60,
        )  # fmt: skip
        lines = alerts.read_text().splitlines() if alerts.exists() else []
        documents = [json.loads(line) for line in lines]
        return next(
            (
                d
                for d in documents
                if d["output_fields"].get("container.name") not in (None, "<NA>")
            ),
            None,
        )

    try:
        found = wait_for(named_alert, timeout=120)  # the probe compiles first
    finally:
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=60)
    fields = found["output_fields"]
    assert fields["container.name"] == f"falconet-meta-{os.getpid()}-labelled", err
    assert fields["container.image.repository"] == "localhost/falconet-bbox"
    assert fields["k8s.pod.name"] == "web-1" and fields["k8s.ns.name"] == "prod"
    assert fields["container.privileged"] is False
    assert fields["container.id"] == container[:12]


@pytest.fixture(scope="module")
def containerd_api(
    podman_api, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """A containerd of the test's own (root, state and socket in a temp dir), with the test
    image imported into the k8s.io namespace and two containers: CRI-labelled and privileged."""
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        pytest.skip("containerd is not installed (make install adds it)")
    work = tmp_path_factory.mktemp("containerd")
    sock = work / "containerd.sock"
    config = work / "config.toml"
    config.write_text(
        f'version = 2\nroot = "{work}/root"\nstate = "{work}/state"\n[grpc]\n  address = "{sock}"\n'
    )
    daemon = subprocess.Popen(
        ["containerd", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    ctr = ["ctr", "-a", str(sock), "-n", "k8s.io"]
    ids = [os.urandom(32).hex() for _ in range(2)]
    try:
        wait_for(sock.exists, timeout=60)
        archive = work / "image.tar"
        _podman("save", "--format", "oci-archive", "-o", str(archive), IMAGE)
        subprocess.run([*ctr, "images", "import", str(archive)], capture_output=True, check=True)
        subprocess.run(
            [*ctr, "run", "-d", "--label", "io.kubernetes.pod.name=web-2",
             "--label", "io.kubernetes.pod.namespace=staging",
             "--label", "io.kubernetes.container.name=app", IMAGE, ids[0], "sleep", "300"],
            capture_output=True, check=True, timeout=120,
        )  # fmt: skip
        subprocess.run(
            [*ctr, "run", "-d", "--privileged", IMAGE, ids[1], "sleep", "300"],
            capture_output=True, check=True, timeout=120,
        )  # fmt: skip
        yield {"socket": str(sock), "labelled": ids[0], "privileged": ids[1]}
    finally:
        for ident in ids:
            subprocess.run([*ctr, "tasks", "kill", "-s", "SIGKILL", ident], capture_output=True)
        for ident in ids:
            wait_for(lambda ident=ident: _task_removed(ctr, ident), timeout=30)
            subprocess.run([*ctr, "containers", "rm", ident], capture_output=True)
        daemon.kill()
        daemon.wait()
        for group in Path("/sys/fs/cgroup").glob("*/k8s.io/*"):
            if group.name in ids:
                group.rmdir()


def _task_removed(ctr: list[str], ident: str) -> bool:
    """`ctr tasks rm` succeeds once the killed task has stopped (or it is already gone)."""
    if subprocess.run([*ctr, "tasks", "rm", ident], capture_output=True).returncode == 0:
        return True
    listed = subprocess.run([*ctr, "tasks", "ls", "-q"], capture_output=True, text=True).stdout
    return ident not in listed


def test_a_containerd_containers_metadata_fills_the_fields(containerd_api, monkeypatch) -> None:
    resolver = ContainerResolver((containerd_api["socket"],))
    monkeypatch.setattr(container_runtime, "_RESOLVER", resolver)
    full_id = containerd_api["labelled"]
    event = _event(full_id[:12], f"8:pids:/k8s.io/{full_id}")
    assert extract("syscall", "container.name", event) is None  # asked in the background
    assert resolver.wait_idle()
    assert extract("syscall", "container.name", event) == "app"
    assert extract("syscall", "container.full_id", event) == full_id
    assert extract("syscall", "container.type", event) == "containerd"
    assert extract("syscall", "container.image.repository", event) == "localhost/falconet-bbox"
    assert extract("syscall", "k8s.pod.name", event) == "web-2"
    assert extract("syscall", "k8s.ns.name", event) == "staging"
    assert extract("syscall", "container.privileged", event) is False
    privileged = containerd_api["privileged"]
    other = _event(privileged[:12], f"8:pids:/k8s.io/{privileged}")
    extract("syscall", "container.privileged", other)
    assert resolver.wait_idle()
    assert extract("syscall", "container.privileged", other) is True


def test_container_ids_come_from_containerd_cgroup_paths() -> None:
    from engine.sources.syscall.state import container_id_from_cgroups

    hexid = "e" * 64
    assert container_id_from_cgroups((f"8:pids:/k8s.io/{hexid}",)) == hexid[:12]


FALCO_YAML = """\
append_output:
  - match:
      source: syscall
    extra_output: "container_id=%container.id container_name=%container.name"
    extra_fields:
      - container.name
      - container.image.repository
      - k8s.pod.name
"""


@pytest.mark.usefixtures("live_ebpf_shared")
def test_upstream_rules_fire_on_a_real_container_with_its_metadata(
    podman_api, shared_dir: Path, tmp_path: Path, falconet_home: Path
) -> None:
    """Falco's own stable rules, unchanged, on a real podman container's activity: `cat
    /etc/shadow` in it raises "Read sensitive file untrusted", and falco.yaml's append_output
    (as Falco's container plugin set-up adds container fields) carries the runtime's metadata."""
    import json
    import signal
    import sys

    from tests.conftest import REPO_ROOT
    from tests.support.live_ebpf import skip_reason

    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    falco_yaml = tmp_path / "falco.yaml"
    falco_yaml.write_text(FALCO_YAML)
    alerts = tmp_path / "alerts.json"
    rules = shared_dir / "upstream-rules" / "falco_rules.yaml"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "FALCONET_HOME": str(falconet_home),
           "FALCONET_CONTAINER_SOCKETS": podman_api["socket"]}  # fmt: skip
    run = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", "--source", "syscall", "-r", str(rules),
         "--falco-config", str(falco_yaml), "-o", "json", "--output-file", str(alerts),
         "--no-web"],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    container = podman_api["labelled"]

    def named_alert() -> dict | None:
        subprocess.run(
            ["podman", "exec", container, "sh", "-c", "cat /etc/shadow >/dev/null; sleep 1"],
            capture_output=True, timeout=60,
        )  # fmt: skip
        lines = alerts.read_text().splitlines() if alerts.exists() else []
        return next(
            (
                d for d in map(json.loads, lines)
                if d["rule"] == "Read sensitive file untrusted"
                and d["output_fields"].get("container.name") not in (None, "<NA>", "host")
            ),
            None,
        )  # fmt: skip

    try:
        found = wait_for(named_alert, timeout=180)  # the probe compiles first
    finally:
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=60)
    fields = found["output_fields"]
    assert fields["container.name"] == f"falconet-meta-{os.getpid()}-labelled", err
    assert fields["container.image.repository"] == "localhost/falconet-bbox"
    assert fields["k8s.pod.name"] == "web-1"
    assert f"container_id={container[:12]}" in found["output"]
