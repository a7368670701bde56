"""`falconet bpf check` and `falconet capture` as real processes."""

from __future__ import annotations

import json
import os

import pytest


def test_bpf_check_reports_each_requirement(run_cli) -> None:
    result = run_cli("bpf", "check", "--no-repair", "-o", "json")
    checks = {c["check"]: c for c in json.loads(result.stdout)}
    assert set(checks) == {
        "kernel", "btf", "capabilities", "bpf syscall", "tracefs", "bcc", "kernel headers"
    }  # fmt: skip
    failed = [c for c in checks.values() if not c["ok"] and c["check"] != "btf"]
    if failed:
        assert result.returncode != 0
        assert "error: live capture is not possible here" in result.stderr
        assert all(c["fix"] for c in failed)
    else:
        assert result.returncode == 0


def test_bpf_check_text_lines(run_cli) -> None:
    result = run_cli("bpf", "check", "--no-repair")
    lines = [line for line in result.stdout.splitlines() if not line.startswith("     fix:")]
    assert len(lines) == 7
    assert all(line.split()[0] in ("ok", "FAIL") for line in lines)


def test_capture_rejects_a_filter_it_cannot_apply(run_cli, tmp_path) -> None:
    out = tmp_path / "x.fncap"
    result = run_cli("capture", "-w", str(out), "--filter", "proc.name=cat", "--duration", "1")
    assert result.returncode == 2
    assert "unsupported capture filter" in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_capture_rejects_a_bad_ring_buffer_size(run_cli, tmp_path) -> None:
    result = run_cli("capture", "-w", str(tmp_path / "x"), "--ringbuf-size", "1000")
    assert result.returncode == 2
    assert "error: --ringbuf-size '1000' is not a power of two" in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()


def _config(tmp_path, text: str) -> dict[str, str]:
    path = tmp_path / "falconet.yaml"
    path.write_text(text)
    return {"FALCONET_CONFIG": str(path)}


def test_run_rejects_a_ring_buffer_size_from_falconet_yaml(run_cli, tmp_path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("- rule: r\n  desc: d\n  condition: evt.type=openat\n  output: o\n"
                     "  priority: INFO\n")  # fmt: skip
    env = _config(tmp_path, "engine:\n  ringbuf_size: 3MiB\n")
    result = run_cli("run", "-r", str(rules), "--no-web", env=env)
    assert result.returncode == 2
    assert f"{tmp_path / 'falconet.yaml'}: engine.ringbuf_size '3MiB'" in result.stderr
    assert "Traceback" not in result.stderr
    # the flag wins over the file, and is what the message names
    flagged = run_cli("run", "-r", str(rules), "--no-web", "--ringbuf-size", "12M", env=env)
    assert flagged.returncode == 2
    assert "--ringbuf-size '12M'" in flagged.stderr


def test_capture_rejects_base_syscalls_it_cannot_capture(run_cli, tmp_path) -> None:
    env = _config(tmp_path, "base_syscalls:\n  custom_set: [openat, '!opnat']\n")
    result = run_cli("capture", "-w", str(tmp_path / "x"), "--duration", "1", env=env)
    assert result.returncode == 2
    assert (
        f"error: {tmp_path / 'falconet.yaml'}: base_syscalls.custom_set: the live probe does not "
        "capture 'opnat'\n"
    ) in result.stderr
    assert "did you mean 'openat'?" in result.stderr
    assert not (tmp_path / "x").exists()


def test_base_syscalls_values_are_type_checked(run_cli, tmp_path) -> None:
    env = _config(tmp_path, "base_syscalls:\n  repair: maybe\n")
    result = run_cli("capture", "-w", str(tmp_path / "x"), "--duration", "1", env=env)
    assert result.returncode == 2
    assert "'base_syscalls.repair' must be a bool" in result.stderr
    typo = run_cli("config", "show", env=_config(tmp_path, "base_syscalls:\n  reapir: true\n"))
    assert typo.returncode == 2
    assert "did you mean 'base_syscalls.repair'?" in typo.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user")
def test_bpf_check_as_unprivileged_user_names_the_fix(falconet_home) -> None:
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    repo = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
         sys.executable, "-m", "cli", "bpf", "check", "--no-repair"],
        capture_output=True, text=True, cwd="/", timeout=60,
        env={**os.environ, "PYTHONPATH": str(repo), "FALCONET_HOME": "/tmp"},
    )  # fmt: skip
    assert result.returncode == 7  # requirement_unmet
    assert "FAIL capabilities" in result.stdout
    assert "fix: run as root, or grant CAP_BPF" in result.stdout
    assert result.stderr.startswith("error: live capture is not possible here: capabilities")
    assert "Traceback" not in result.stderr
