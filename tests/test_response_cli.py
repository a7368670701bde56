"""`falconet response test|actions` as a real process."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import CliRunner

RULES = """
settings:
  dry_run: false
rules:
  - name: Isolate C2 connections
    match:
      rules: ["Outbound connection to C2*"]
      priority: Warning
      output_fields: "fd.rip startswith 10."
    actions:
      - action: network:block
        parameters: {ttl: 600}
      - action: http:webhook
        dry_run: true
        parameters:
          url: https://hooks.example/falco
          body: {text: "${rule}: ${proc.name} -> ${fd.rip}", pid: "${proc.pid}"}
    continue: false
  - name: Never reached after a stop
    match: {}
    actions:
      - action: exec:script
        parameters: {command: [/bin/true]}
"""

ALERT = {
    "hostname": "node-1",
    "priority": "Critical",
    "rule": "Outbound connection to C2 server",
    "source": "syscall",
    "time": "2026-01-01T00:00:00.000000000Z",
    "tags": ["network"],
    "output_fields": {"proc.name": "curl", "proc.pid": 31337, "fd.rip": "10.9.8.7"},
}


def write(tmp_path: Path, alert: dict) -> tuple[str, str]:  # type: ignore[type-arg]
    rules, alert_file = tmp_path / "response.yaml", tmp_path / "alert.json"
    rules.write_text(RULES)
    alert_file.write_text(json.dumps(alert))
    return str(rules), str(alert_file)


def test_response_test_shows_rendered_actions_without_running_them(
    run_cli: CliRunner, tmp_path: Path
) -> None:
    rules, alert = write(tmp_path, ALERT)
    done = run_cli("response", "test", rules, "--alert", alert, "-o", "json")
    assert done.returncode == 0, done.stderr
    (preview,) = json.loads(done.stdout)
    planned = preview["actions"]
    assert [(a["response_rule"], a["action"], a["dry_run"]) for a in planned] == [
        ("Isolate C2 connections", "network:block", False),
        ("Isolate C2 connections", "http:webhook", True),
    ]
    assert planned[0]["parameters"]["addresses"] == ["10.9.8.7"]
    assert planned[1]["parameters"]["body"] == {
        "text": "Outbound connection to C2 server: curl -> 10.9.8.7",
        "pid": 31337,
    }
    text = run_cli("response", "test", rules, "--alert", alert)
    assert "Isolate C2 connections -> http:webhook [dry run]" in text.stdout
    assert 'addresses: ["10.9.8.7"]' in text.stdout


def test_response_test_no_match(run_cli: CliRunner, tmp_path: Path) -> None:
    rules, alert = write(tmp_path, {**ALERT, "rule": "Something else", "priority": "Debug"})
    done = run_cli("response", "test", rules, "--alert", alert)
    assert done.returncode == 0, done.stderr
    # only the catch-all rule matches
    assert (
        "Isolate" not in done.stdout and "Never reached after a stop -> exec:script" in done.stdout
    )


def test_response_test_bad_input_is_one_line_and_usage_status(
    run_cli: CliRunner, tmp_path: Path
) -> None:
    rules, alert = write(tmp_path, ALERT)
    Path(rules).write_text(RULES.replace("network:block", "network:blok"))
    done = run_cli("response", "test", rules, "--alert", alert)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: {rules}: rule 'Isolate C2 connections' action 1: unknown action 'network:blok'",
        "hint: did you mean 'network:block'?",
    ]
    Path(alert).write_text("{not json")
    Path(rules).write_text(RULES)
    bad_alert = run_cli("response", "test", rules, "--alert", alert)
    assert bad_alert.returncode == 2 and "not a JSON alert" in bad_alert.stderr
    assert "Traceback" not in bad_alert.stderr


def test_response_actions_lists_every_action_and_parameters(run_cli: CliRunner) -> None:
    done = run_cli("response", "actions", "-o", "json")
    assert done.returncode == 0, done.stderr
    actions = {a["name"]: a for a in json.loads(done.stdout)}
    assert set(actions) == {
        "aws:lambda",
        "exec:script",
        "file:quarantine",
        "http:webhook",
        "kubernetes:label",
        "kubernetes:networkpolicy",
        "kubernetes:terminate",
        "network:block",
        "process:terminate",
    }
    grace = {p["name"]: p for p in actions["process:terminate"]["parameters"]}["grace_period"]
    assert grace["default"] == 5.0 and grace["help"]
    text = run_cli("response", "actions")
    assert "process:terminate: SIGTERM, then SIGKILL" in text.stdout


def test_response_test_reads_json_lines_of_alerts(run_cli: CliRunner, tmp_path: Path) -> None:
    rules, alert = write(tmp_path, ALERT)
    other = {**ALERT, "output_fields": {**ALERT["output_fields"], "fd.rip": "192.0.2.1"}}
    Path(alert).write_text(json.dumps(ALERT) + "\n" + json.dumps(other) + "\n")
    done = run_cli("response", "test", rules, "--alert", alert, "-o", "json")
    assert done.returncode == 0, done.stderr
    first, second = json.loads(done.stdout)
    assert [a["action"] for a in first["actions"]] == ["network:block", "http:webhook"]
    # 192.0.2.1 fails the output_fields condition: only the catch-all rule is left
    assert [a["response_rule"] for a in second["actions"]] == ["Never reached after a stop"]
