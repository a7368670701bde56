"""End to end, live: a real action raises a real alert (eBPF) and the response action
terminates the real process that did it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.live_ebpf import skip_reason
from tests.test_bpf_live import _copy_binary

pytestmark = pytest.mark.usefixtures("live_ebpf_shared")

RULES = """\
- rule: Shadow read by shadowloop
  desc: the test's reader opened /etc/shadow
  condition: >
    evt.type in (open, openat, openat2) and fd.name = /etc/shadow and proc.name = shadowloop
  output: shadow read (process=%proc.name pid=%proc.pid exepath=%proc.exepath file=%fd.name)
  priority: WARNING
"""

RESPONSE = """\
rules:
  - name: Kill untrusted shadow readers
    match:
      rules: ["Shadow read by shadowloop"]
      output_fields: "proc.name = shadowloop"
    actions:
      - action: process:terminate
        parameters: {grace_period: 1}
"""

# Reads /etc/shadow every 200 ms for up to 60 s: the first read after capture has started
# raises the alert, and the response must end it long before the loop would.
LOOP = """
import time
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    open("/etc/shadow").read()
    time.sleep(0.2)
"""


def run_until_terminated(
    rules: Path, response_text: str, binary_name: str, falconet_home: Path, tmp_path: Path
) -> list[dict]:
    """Run `falconet run -r RULES --response ...` live, start a copy of python named
    `binary_name` that reads /etc/shadow in a loop, assert the response terminated it (SIGTERM)
    and falconet stopped cleanly; returns every JSON line falconet printed."""
    response = tmp_path / "response.yaml"
    response.write_text(response_text)
    env = dict(
        os.environ,
        FALCONET_HOME=str(falconet_home),
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
    )
    falconet = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli",
            "run",
            "-r",
            str(rules),
            "--response",
            str(response),
            "--no-web",
            "-o",
            "json",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    looper = _copy_binary(sys.executable, tmp_path / binary_name)
    victim = subprocess.Popen([str(looper), "-c", LOOP])
    try:
        started = time.monotonic()
        code = victim.wait(timeout=70)
        assert code == -signal.SIGTERM, "the reader was not terminated by the response"
        assert time.monotonic() - started < 55
    finally:
        if victim.poll() is None:
            victim.kill()
        falconet.send_signal(signal.SIGTERM)
        stdout, stderr = falconet.communicate(timeout=60)
    assert falconet.returncode == 0, stderr
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_live_alert_terminates_the_offending_process(falconet_home: Path, tmp_path: Path) -> None:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    printed = run_until_terminated(rules, RESPONSE, "shadowloop", falconet_home, tmp_path)
    alerts = [a for a in printed if a["rule"] == "Shadow read by shadowloop"]
    outcomes = [a for a in printed if a["source"] == "response"]
    assert alerts and alerts[0]["output_fields"]["proc.name"] == "shadowloop"
    assert any(
        "succeeded" in json.dumps(o) and "process:terminate" in json.dumps(o) for o in outcomes
    ), outcomes
