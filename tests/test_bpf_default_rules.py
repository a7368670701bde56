"""falconet's own default ruleset (the embedded feed) catches the same real actions live."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live_ebpf import skip_reason
from tests.test_bpf_live import (
    MEMFD_EXEC,
    PTRACE_ATTACH,
    Detector,
    _copy_binary,
    _rule,
)

pytestmark = pytest.mark.usefixtures("live_ebpf_shared")

DEFAULT_RULES = (
    Path(__file__).resolve().parent.parent / "feeds" / "default_feed" / "falconet_rules.yaml"
)


@pytest.fixture(scope="module")
def detector() -> Iterator[Detector]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with Detector(DEFAULT_RULES) as d:
        yield d


def test_untrusted_read_of_shadow(detector: Detector, tmp_path: Path) -> None:
    reader = _copy_binary("cat", tmp_path / "peeker")
    subprocess.run([str(reader), "/etc/shadow"], stdout=subprocess.DEVNULL, check=True)
    alert = detector.wait_for(_rule("Read sensitive file untrusted", "proc.name", "peeker"))
    assert alert is not None and alert["fields"]["fd.name"] == "/etc/shadow"


def test_trusted_reader_is_quiet(detector: Detector, tmp_path: Path) -> None:
    reader = _copy_binary("cat", tmp_path / "sshd")
    subprocess.run([str(reader), "/etc/shadow"], stdout=subprocess.DEVNULL, check=True)
    detector.assert_quiet(_rule("Read sensitive file untrusted", "proc.name", "sshd"))


def test_symlink_and_hardlink_over_shadow(detector: Detector, tmp_path: Path) -> None:
    subprocess.run(["ln", "-s", "/etc/shadow", str(tmp_path / "sym")], check=True)
    subprocess.run(["ln", "/etc/shadow", str(tmp_path / "hard")], capture_output=True)
    symlink = detector.wait_for(
        _rule("Create Symlink Over Sensitive Files", "evt.arg.linkpath", str(tmp_path))
    )
    hardlink = detector.wait_for(
        _rule("Create Hardlink Over Sensitive Files", "evt.arg.newpath", str(tmp_path))
    )
    assert symlink is not None and symlink["fields"]["evt.arg.target"] == "/etc/shadow"
    assert hardlink is not None and hardlink["fields"]["evt.arg.oldpath"] == "/etc/shadow"


def test_execution_from_dev_shm(detector: Detector) -> None:
    # Named per process: the probe sees the whole machine, and other runs of this test with it.
    target = Path("/dev/shm") / f"falconet-default-rules-test-{os.getpid()}"
    _copy_binary("true", target)
    try:
        subprocess.run([str(target)], check=True)
        assert detector.wait_for(_rule("Execution from /dev/shm", "proc.exepath", str(target)))
    finally:
        target.unlink()


def test_memfd_ptrace_and_key_search(detector: Detector, tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-c", MEMFD_EXEC], check=True)
    assert detector.wait_for(lambda a: a["rule"] == "Fileless execution via memfd_create")
    tracer = _copy_binary(sys.executable, tmp_path / "tracerpy")
    subprocess.run([str(tracer), "-c", PTRACE_ATTACH], check=True)
    assert detector.wait_for(_rule("PTRACE attached to process", "proc.name", "tracerpy"))
    subprocess.run(["find", str(tmp_path), "-name", "id_rsa"], check=True)
    assert detector.wait_for(_rule("Search Private Keys or Passwords", "proc.name", "find"))
