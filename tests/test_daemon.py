"""`falconet run` as a daemon: a real process serving the k8s_audit webhook, with its web
endpoints, rules-file hot reload (watcher and SIGHUP), refused invalid rules, response actions
and SIGTERM draining."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.k8s_audit_event import EVENT
from tests.support.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[1]


def _rule(name: str, output: str) -> str:
    return (
        f"- rule: {name}\n  desc: {name}\n  condition: ka.verb=create and "
        f"ka.target.resource=pods\n  output: {output} (user=%ka.user.name)\n"
        "  priority: WARNING\n  source: k8s_audit\n"
    )


def _healthz(web: str) -> int:
    """The status of /healthz: 503 until the run's input is open, then 200."""
    try:
        with urllib.request.urlopen(f"{web}/healthz", timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


class Daemon:
    def __init__(self, home: Path, tmp: Path, *args: str) -> None:
        self.alerts = tmp / "alerts.json"
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), FALCONET_HOME=str(home))
        command = [sys.executable, "-m", "cli", "run", "--source", "k8s_audit", "-o", "json"]
        command += ["--listen", "127.0.0.1:0", "--output-file", str(self.alerts)]
        command += ["--web", "127.0.0.1:0", *args]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        # Port 0 and the addresses the daemon logs: no port can be taken between choice and bind.
        announced = self._announced("listening on", "web endpoints on")
        self.hook, self.web = announced["listening on"], announced["web endpoints on"]
        wait_for(lambda: _healthz(self.web) == 200)

    def _announced(self, *what: str) -> dict[str, str]:
        """The URLs of the stderr lines naming each of `what` (the daemon logs them at start)."""
        assert self.process.stderr is not None
        found: dict[str, str] = {}
        for line in self.process.stderr:
            found.update((w, line.split()[-1]) for w in what if f"{w} http" in line)
            if len(found) == len(what):
                return found
        raise AssertionError(f"the daemon exited (status {self.process.wait()}) before {what}")

    def post(self) -> None:
        request = urllib.request.Request(
            self.hook,  # the endpoint URL, path included
            data=json.dumps(EVENT).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

    def alerts_written(self) -> list[dict[str, Any]]:
        if not self.alerts.exists():
            return []
        return [json.loads(line) for line in self.alerts.read_text().splitlines() if line]

    def rules_fired(self) -> list[str]:
        return [a["rule"] for a in self.alerts_written()]

    def stop(self) -> tuple[int, str, str]:
        self.process.send_signal(signal.SIGTERM)
        stdout, stderr = self.process.communicate(timeout=30)
        return self.process.returncode, stdout, stderr


@pytest.fixture
def daemon(falconet_home: Path, tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(*args: str) -> Daemon:
        started.append(Daemon(falconet_home, tmp_path, *args))
        return started[-1]

    yield start
    for each in started:
        if each.process.poll() is None:
            each.process.kill()
            each.process.wait()


def test_edited_rules_file_reloads_and_an_invalid_one_is_refused(
    daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(_rule("Pod One", "first"))
    run = daemon("-r", str(rules))
    run.post()
    wait_for(lambda: run.rules_fired() == ["Pod One"])

    rules.write_text(_rule("Pod Two", "second"))
    wait_for(lambda: 'falconet_reloads_total{result="ok"} 2.0' in _get(f"{run.web}/metrics"))
    run.post()
    wait_for(lambda: run.rules_fired()[1:] == ["Pod Two"])  # the old rule no longer fires

    rules.write_text("- rule: Broken\n  condition: ka.verb=(\n")
    wait_for(lambda: "Falco internal: rules reload failed" in run.rules_fired())
    run.post()
    wait_for(lambda: run.rules_fired()[-1] == "Pod Two")  # the valid ruleset keeps running
    events = 'falconet_events_total{source="k8s_audit"} 3.0'
    wait_for(lambda: events in _get(f"{run.web}/metrics"))
    metrics = _get(f"{run.web}/metrics")
    assert 'falconet_reloads_total{result="failed"} 1.0' in metrics
    assert 'falconet_alerts_total{priority="Warning",rule="Pod Two"} 2.0' in metrics
    # Falco's families too, updated while the run goes on (Falco's Grafana dashboard).
    falco_matches = 'falcosecurity_falco_rules_matches_total{priority="4",rule_name="Pod Two"'
    assert falco_matches + ',source="k8s_audit"} 2.0' in metrics
    assert f'falcosecurity_falco_sha256_rules_files_info{{file_name="{rules.name}"' in metrics
    assert "falconet_ruleset_info{digest=" in metrics
    listed = json.loads(_get(f"{run.web}/rules"))["files"][0]
    assert listed["path"] == str(rules)
    assert listed["sha256"] == hashlib.sha256(_rule("Pod Two", "second").encode()).hexdigest()
    assert json.loads(_get(f"{run.web}/versions"))

    code, stdout, stderr = run.stop()
    assert code == 0, stderr
    assert json.loads(stderr.splitlines()[-1])["events_by_source"] == {"k8s_audit": 3}
    assert [json.loads(line)["rule"] for line in stdout.splitlines()] == run.rules_fired()


RESPONSE_RULES = """
rules:
  - name: Record pod creations
    match: {{rules: ["Pod One"]}}
    actions:
      - action: exec:script
        parameters: {{command: ["{script}"]}}
"""


def test_sighup_forces_a_reload(daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(_rule("Pod One", "first"))
    run = daemon("-r", str(rules))
    run.process.send_signal(signal.SIGHUP)
    wait_for(lambda: 'falconet_reloads_total{result="ok"} 2.0' in _get(f"{run.web}/metrics"))
    assert run.stop()[0] == 0


def test_response_action_runs_and_its_outcome_is_an_output(
    daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(_rule("Pod One", "first"))
    marker = tmp_path / "responded"
    script = tmp_path / "respond.sh"
    script.write_text(f"#!/bin/sh\ncat > {marker}\n")  # the alert's JSON arrives on stdin
    script.chmod(0o755)
    response = tmp_path / "response.yaml"
    response.write_text(RESPONSE_RULES.format(script=script))
    run = daemon("-r", str(rules), "--response", str(response))
    run.post()
    wait_for(lambda: any(a["source"] == "response" for a in run.alerts_written()))
    assert json.loads(marker.read_text())["rule"] == "Pod One"
    assert 'falconet_response_actions_total{action="exec:script",status="succeeded"} 1.0' in _get(
        f"{run.web}/metrics"
    )
    # The response rules file hot-reloads: the next alert runs the new script.
    second = tmp_path / "respond-again.sh"
    second.write_text(f"#!/bin/sh\ncat > {marker}.again\n")
    second.chmod(0o755)
    response.write_text(RESPONSE_RULES.format(script=second))

    def responded_again() -> bool:
        run.post()
        time.sleep(0.2)
        return Path(f"{marker}.again").exists()

    wait_for(responded_again)
    code, stdout, _ = run.stop()
    assert code == 0
    # Drained on SIGTERM: every alert's action outcome reached stdout, the last ones included.
    printed = [json.loads(line) for line in stdout.splitlines()]
    alerts = [a for a in printed if a["source"] == "k8s_audit"]
    outcomes = [a for a in printed if a["source"] == "response"]
    assert len(outcomes) == len(alerts) >= 2


def test_followed_updates_hot_reload_and_a_broken_one_is_refused(
    daemon: Callable[..., Daemon],
    registry: Any,
    run_cli: Any,
    falconet_home: Path,
    tmp_path: Path,
) -> None:
    from tests.follow_support import REPO, publish

    config = falconet_home / "config" / "falconet.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"registries:\n  '{registry.host}': {{plain_http: true}}\n")
    ref = f"{registry.host}/{REPO}:latest"
    publish(registry, tmp_path, "1.0.0", {"a.yaml": _rule("Pod One", "first")})
    installed = run_cli("artifact", "install", ref)
    assert installed.returncode == 0, installed.stderr
    run = daemon("--follow", ref, "--every", "200ms", "--startup", "immediate")
    run.post()
    wait_for(lambda: run.rules_fired() == ["Pod One"])

    publish(registry, tmp_path, "2.0.0", {"a.yaml": _rule("Pod Two", "second")})
    wait_for(lambda: 'falconet_follow_updates_total{ref="' in _get(f"{run.web}/metrics"))
    wait_for(lambda: "Pod Two" in json.dumps(_rules_loaded(run)))
    # /rules reads the files from disk: the swap itself is the reload counter (the candidate is
    # compiled by a limited child process first, which takes a moment).
    wait_for(lambda: _reloads_ok(run) >= 2)
    run.post()
    wait_for(lambda: run.rules_fired()[1:] == ["Pod Two"])  # within one tick; the old one gone

    publish(registry, tmp_path, "3.0.0", {"a.yaml": "- rule: Broken\n  condition: (\n"})
    wait_for(lambda: any("refused" in a["output"] for a in run.alerts_written()))
    run.post()
    wait_for(lambda: run.rules_fired()[-1] == "Pod Two")  # v2 keeps running
    assert run.stop()[0] == 0


def _reloads_ok(run: Daemon) -> float:
    for line in _get(f"{run.web}/metrics").splitlines():
        if line.startswith('falconet_reloads_total{result="ok"}'):
            return float(line.split()[-1])
    return 0.0


def _rules_loaded(run: Daemon) -> list[str]:
    files = json.loads(_get(f"{run.web}/rules"))["files"]
    return [Path(f["path"]).read_text() for f in files]


def test_a_busy_web_address_is_refused_in_one_line(run_cli: Any, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(_rule("Pod One", "first"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_cli(
            "run", "-r", str(rules), "--source", "k8s_audit",
            "--listen", "127.0.0.1:0", "--web", f"127.0.0.1:{port}",
        )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in done.stderr and "--no-web" in done.stderr
