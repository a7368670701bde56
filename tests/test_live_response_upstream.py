"""End to end, live: Falco's own `Read sensitive file untrusted` rule, unchanged (its output
prints no %proc.pid), answered by `process:terminate` with its defaults: the engine acts on the
event's own process (pid and start time), which a real eBPF capture saw read /etc/shadow."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.live_ebpf import skip_reason
from tests.test_live_response import run_until_terminated

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
    printed = run_until_terminated(rules, RESPONSE, "upstreamloop", falconet_home, tmp_path)
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
