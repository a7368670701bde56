"""`falconet artifact follow` and `artifact rollback` as real processes: SIGHUP to Falco after
a swap, SIGTERM exits 0, kill -9 mid-swap leaves a complete set, rollback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from feeds.transaction import recover
from tests.conftest import REPO_ROOT, CliRunner
from tests.follow_support import REPO, publish, rule_yaml
from tests.support.registry_server import RegistryServer
from tests.support.waiting import wait_for


def follow_process(falconet_home: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "FALCONET_HOME": str(falconet_home)}
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "artifact", "follow", "--plain-http", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_follow_once_then_rollback_through_the_cli(
    registry: RegistryServer, run_cli: CliRunner, falconet_home: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/{REPO}:latest"
    publish(registry, tmp_path, "1.0.0", {"a.yaml": rule_yaml("Rule A")})
    first = run_cli("artifact", "follow", ref, "--once", "--plain-http", "-o", "json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["status"] == "updated"
    publish(registry, tmp_path, "2.0.0", {"b.yaml": rule_yaml("Rule B")})
    second = run_cli("artifact", "follow", ref, "--once", "--plain-http")
    assert f"{ref}: updated to 2.0.0" in second.stdout
    back = run_cli("artifact", "rollback", REPO)
    assert back.returncode == 0, back.stderr
    assert "rolled app-rules back to 1.0.0" in back.stdout
    assert sorted(p.name for p in (falconet_home / "rules").glob("*.yaml")) == ["a.yaml"]
    missing = run_cli("artifact", "rollback", "nothing-here")
    assert missing.returncode == 3
    assert "error: no last-good set of nothing-here" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_refused_update_prints_an_internal_alert(
    registry: RegistryServer, run_cli: CliRunner, tmp_path: Path
) -> None:
    ref = f"{registry.host}/{REPO}:latest"
    publish(registry, tmp_path, "1.0.0", {"a.yaml": rule_yaml("Rule A", "evt.type in (open")})
    result = run_cli("artifact", "follow", ref, "--once", "--plain-http", "-o", "json")
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    alert = next(doc for doc in lines if doc.get("rule") == "Falconet follow update refused")
    assert alert["source"] == "internal" and alert["priority"] == "Error"
    assert "LOAD_ERR_COMPILE_CONDITION" in alert["output"]
    assert "/rules/a.yaml" in alert["output"] and "staging" not in alert["output"]
    assert result.returncode == 1  # --once: a refused update is a failed run


def test_follow_sends_sighup_after_a_swap_and_exits_0_on_sigterm(
    registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    publish(registry, tmp_path, "1.0.0", {"a.yaml": rule_yaml("Rule A")})
    # Stands in for Falco: counts the SIGHUPs it gets.
    falco = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal,sys,time\n"
            "signal.signal(signal.SIGHUP, lambda *a: print('reload', flush=True))\n"
            "time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    pidfile = tmp_path / "falco.pid"
    pidfile.write_text(f"{falco.pid}\n")
    ref = f"{registry.host}/{REPO}:latest"
    follower = follow_process(
        falconet_home, ref, "--every", "200ms", "--startup", "immediate",
        "--reload-signal", str(pidfile),
    )  # fmt: skip
    try:
        assert falco.stdout is not None
        assert falco.stdout.readline().strip() == "reload"  # after v1 is swapped in
        publish(registry, tmp_path, "2.0.0", {"b.yaml": rule_yaml("Rule B")})
        assert falco.stdout.readline().strip() == "reload"  # after v2
        assert (falconet_home / "rules" / "b.yaml").is_file()
        follower.send_signal(signal.SIGTERM)
        out, err = follower.communicate(timeout=30)
        assert follower.returncode == 0, err
        assert "updated to 2.0.0" in out
    finally:
        follower.kill()
        falco.kill()
        falco.wait()


def test_kill_9_during_swaps_leaves_a_complete_set(
    registry: RegistryServer, run_cli: CliRunner, falconet_home: Path, tmp_path: Path
) -> None:
    """Versions ship 60 files each, all named after the version: any mix is visible."""
    ref = f"{registry.host}/{REPO}:latest"

    def files(version: str) -> dict[str, str]:
        return {f"r{i:02d}.yaml": rule_yaml(f"Rule {version} {i}") for i in range(60)}

    publish(registry, tmp_path, "1.0.0", files("1.0.0"))
    assert run_cli("artifact", "follow", ref, "--once", "--plain-http").returncode == 0
    rules = falconet_home / "rules"
    state = falconet_home / "state"
    journal = state / "transaction.json"
    previous = "1.0.0"
    for attempt, version in enumerate(("2.0.0", "3.0.0", "4.0.0")):
        publish(registry, tmp_path, version, files(version))
        process = follow_process(falconet_home, ref, "--every", "1h", "--startup", "immediate")
        # Kill while the journal exists (mid-commit), else as soon as staging has begun.
        wait_for(
            lambda p=process: (
                journal.exists()
                or any(rules.glob(".falconet-staging-*/*.yaml"))
                or p.poll() is not None
            ),
            timeout=60,
        )
        time.sleep(0.002 * attempt)
        process.kill()
        process.wait()
        recover(state)  # what the next falconet start does first
        assert rule_versions(rules) in ({previous}, {version})
        assert len(list(rules.glob("*.yaml"))) == 60
        finished = run_cli("artifact", "follow", ref, "--once", "--plain-http")
        assert finished.returncode == 0, finished.stderr
        assert rule_versions(rules) == {version}
        previous = version


def rule_versions(rules: Path) -> set[str]:
    """The versions named by the rules of the directory's files (one per file)."""
    return {p.read_text().split()[3] for p in rules.glob("*.yaml")}
