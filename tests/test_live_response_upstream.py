"""End to end, live: Falco's own `Read sensitive file untrusted` rule, unchanged (its output
prints no %proc.pid), answered by `process:terminate` with its defaults: the engine acts on the
event's own process (pid and start time), which a real eBPF capture saw read /etc/shadow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support.live_ebpf import skip_reason
from tests.test_bpf_live import _copy_binary
from tests.test_live_response import LOOP

pytestmark = pytest.mark.usefixtures("live_ebpf_shared")

RESPONSE = """\
rules:
  - name: Kill untrusted shadow readers
    match:
      rules: ["Read sensitive file untrusted"]
      output_fields: "proc.name = upstreamloop"
    actions:
      - action: process:terminate
        parameters: {grace_period: 1}
"""


def test_the_upstream_rule_unchanged_drives_a_terminate(
    falconet_home: Path, tmp_path: Path, shared_dir: Path
) -> None:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    rules = shared_dir / "upstream-rules" / "falco_rules.yaml"
    (rule,) = [
        r
        for r in yaml.safe_load(rules.read_text())
        if r.get("rule") == "Read sensitive file untrusted"
    ]
    assert "%proc.pid" not in rule["output"]  # the point: the output does not print the pid
    response = tmp_path / "response.yaml"
    response.write_text(RESPONSE)
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
    looper = _copy_binary(sys.executable, tmp_path / "upstreamloop")
    victim = subprocess.Popen([str(looper), "-c", LOOP])
    try:
        started = time.monotonic()
        code = victim.wait(timeout=90)
        assert code == -signal.SIGTERM, "the reader was not terminated by the response"
        assert time.monotonic() - started < 85
    finally:
        if victim.poll() is None:
            victim.kill()
        falconet.send_signal(signal.SIGTERM)
        stdout, stderr = falconet.communicate(timeout=60)
    assert falconet.returncode == 0, stderr
    printed = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    alerts = [
        a
        for a in printed
        if a["rule"] == "Read sensitive file untrusted"
        and a["output_fields"].get("proc.name") == "upstreamloop"
    ]
    assert alerts and "proc.pid" not in alerts[0]["output_fields"]
    assert "falconet.event" not in alerts[0]  # the identity never reaches the outputs
    outcomes = [a for a in printed if a["source"] == "response"]
    assert any(
        o["output_fields"].get("response.status") == "succeeded"
        and o["output_fields"].get("response.action") == "process:terminate"
        for o in outcomes
    ), outcomes
