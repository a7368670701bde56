"""`falconet run --source syscall`: the live probe behind the run loop, as a real process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.live_ebpf import skip_reason

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.usefixtures("live_ebpf_shared")
def test_run_live_raises_falco_json_alert(shared_dir: Path, tmp_path: Path, falconet_home) -> None:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    rules = shared_dir / "upstream-rules" / "falco_rules.yaml"
    alerts = tmp_path / "alerts.json"
    run = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", "--source", "syscall", "-r", str(rules),
         "-o", "json", "--output-file", str(alerts)],
        env={**os.environ, "PYTHONPATH": str(REPO), "FALCONET_HOME": str(falconet_home)},
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        reader = tmp_path / "runpeek"
        shutil.copy("/bin/cat", reader)
        found = None
        deadline = time.monotonic() + 60  # the probe compiles first
        while found is None and time.monotonic() < deadline and run.poll() is None:
            subprocess.run([str(reader), "/etc/shadow"], stdout=subprocess.DEVNULL, check=True)
            time.sleep(0.5)
            lines = alerts.read_text().splitlines() if alerts.exists() else []
            found = next((json.loads(x) for x in lines if "runpeek" in x), None)
    finally:
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=30)
    assert found is not None, err
    assert found["rule"] == "Read sensitive file untrusted"
    assert found["priority"] == "Warning"
    assert found["source"] == "syscall"
    assert found["output_fields"]["fd.name"] == "/etc/shadow"
    assert found["output_fields"]["proc.name"] == "runpeek"
    assert run.returncode == 0, err
