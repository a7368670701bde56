"""`falconet run` as a real process: replays (syscall captures, k8s audit and CloudTrail files),
the summary, refusals (requirements, live capture, bad selections, bad rules), the installed
default rules, and the k8s audit webhook until SIGTERM with file outputs reopened on SIGUSR1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.support.waiting import wait_for

FALCO_ALERT_KEYS = {"hostname", "output", "output_fields", "priority", "rule", "source", "tags"}
RULE_OPEN_FROM_CAT = "rules/single_rule.yaml"


def _specs(shared_dir: Path) -> Path:
    return shared_dir / "upstream-events/falco-0.34.1-test-specs"


def _json_alerts(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_replay_prints_alerts_then_the_summary(run_cli: Any, shared_dir: Path) -> None:
    done = run_cli(
        "run",
        "-r",
        str(_specs(shared_dir) / RULE_OPEN_FROM_CAT),
        "--replay",
        str(shared_dir / "upstream-captures/cat_write.scap"),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # Exit events only by default: the 4 opens of cat (with --all-events, their 4 enters too).
    assert len(lines) == 4
    assert all(line.endswith("Warning An open was seen (command=cat /dev/null)") for line in lines)
    assert "Events detected: 4" in done.stderr
    assert "   open_from_cat: 4" in done.stderr
    assert "Events processed: " in done.stderr and "events/s" in done.stderr


def test_all_events_also_evaluates_enter_events(run_cli: Any, shared_dir: Path) -> None:
    done = run_cli(
        "run",
        "-r",
        str(_specs(shared_dir) / RULE_OPEN_FROM_CAT),
        "--replay",
        str(shared_dir / "upstream-captures/cat_write.scap"),
        "--all-events",
        "-o",
        "json",
    )
    assert done.returncode == 0, done.stderr
    alerts = _json_alerts(done.stdout)
    assert len(alerts) == 8
    assert all(set(a) >= FALCO_ALERT_KEYS and a["source"] == "syscall" for a in alerts)
    assert json.loads(done.stderr.splitlines()[-1])["alerts_by_rule"] == {"open_from_cat": 8}


def test_upstream_k8s_audit_events_with_current_rules(run_cli: Any, shared_dir: Path) -> None:
    from engine.loader import load_rules_files, rulesets_for
    from engine.sources.readers import read_events

    rules = shared_dir / "upstream-rules/k8s_audit_rules.yaml"
    events = shared_dir / "upstream-events/k8s_audit"
    done = run_cli("run", "-r", str(rules), "--replay", str(events), "-o", "json")
    assert done.returncode == 0, done.stderr
    alerts = _json_alerts(done.stdout)
    assert all(set(a) >= FALCO_ALERT_KEYS and a["source"] == "k8s_audit" for a in alerts)
    # The same rules evaluated directly on the same events, rule by rule.
    rulesets = rulesets_for(load_rules_files([rules]))
    expected = Counter(
        rule.name
        for event in read_events("k8s_audit", events)
        for rule in rulesets.evaluate(event, "k8s_audit")
    )
    assert Counter(a["rule"] for a in alerts) == expected
    assert expected["Create Disallowed Namespace"] >= 1
    # fal_01_003.json is malformed on purpose: skipped, counted, not fatal.
    assert json.loads(done.stderr.splitlines()[-1])["skipped_input"] >= 1


def test_cloudtrail_samples_with_current_rules(run_cli: Any, shared_dir: Path) -> None:
    rules = str(shared_dir / "upstream-rules/aws_cloudtrail_rules.yaml")
    trails = str(shared_dir / "upstream-events/cloudtrail")
    quiet = run_cli("run", "-r", rules, "--replay", trails)
    # StartInstances matches none of the enabled rules, as with Falco's cloudtrail plugin.
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == ""
    assert "(aws_cloudtrail: 2)" in quiet.stderr
    # -t cloud enables the disabled catch-all rule (falco -t semantics): once per record.
    tagged = run_cli("run", "-r", rules, "--replay", trails, "--tag", "cloud", "-o", "json")
    assert tagged.returncode == 0, tagged.stderr
    alerts = _json_alerts(tagged.stdout)
    assert [a["rule"] for a in alerts] == ["All Cloudtrail Events"] * 2
    assert all(a["priority"] == "Debug" and "cloud" in a["tags"] for a in alerts)


def _rules_file(tmp_path: Path, header: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(
        header
        + "- rule: any open\n  desc: d\n  condition: evt.type = open\n"
        + "  output: open %fd.name\n  priority: WARNING\n"
    )
    return path


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("- required_engine_version: 99.0.0\n", "Rules require engine version 99.0.0"),
        (
            "- required_plugin_versions:\n  - name: nosuchplugin\n    version: 1.0.0\n",
            "must load one of: nosuchplugin (>= 1.0.0)",
        ),
    ],
)
def test_unmet_requirements_are_refused(
    run_cli: Any, shared_dir: Path, tmp_path: Path, header: str, message: str
) -> None:
    rules = _rules_file(tmp_path, header)
    capture = str(shared_dir / "upstream-captures/cat_write.scap")
    done = run_cli("run", "-r", str(rules), "--replay", capture)
    assert done.returncode == 7, done.stderr
    assert message in done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr


def test_live_syscall_capture_without_privileges_is_refused_with_a_hint(
    run_cli: Any, tmp_path: Path
) -> None:
    # Live capture exists (bpf/, tests/test_bpf_run.py); without BPF privileges it is a
    # requirement_unmet error naming the fix.
    import shutil

    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run the command as an unprivileged user")
    rules = _rules_file(tmp_path, "")
    for directory in (tmp_path, *tmp_path.parents):  # the rules file must be readable by nobody
        if directory == Path("/"):
            break
        directory.chmod(directory.stat().st_mode | 0o005)
    done = _run_unprivileged(setpriv, ["run", "-r", str(rules), "--source", "syscall"])
    assert done.returncode == 7
    assert "error: capabilities" in done.stderr
    assert "hint: run as root, or grant CAP_BPF" in done.stderr
    assert "falconet run --replay FILE" in done.stderr


def test_the_main_job_without_privileges_fails_before_any_work(tmp_path: Path) -> None:
    """`falconet run` (install the default feed, then capture live): an unprivileged user is
    told what is missing before anything is installed or any endpoint opened."""
    import shutil

    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run the command as an unprivileged user")
    home = Path("/tmp/falconet-nobody")
    shutil.rmtree(home, ignore_errors=True)
    done = _run_unprivileged(setpriv, ["run", "--web", "127.0.0.1:0"])
    assert done.returncode == 7, done.stderr
    assert "capabilities" in done.stderr and "--replay" in done.stderr
    assert "installing" not in done.stderr
    assert not (home / "rules").exists()  # nothing installed


def _run_unprivileged(setpriv: str, args: list[str]) -> Any:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    return subprocess.run(
        [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
         sys.executable, "-m", "cli", *args],
        capture_output=True, text=True, cwd="/", timeout=120,
        env={**os.environ, "PYTHONPATH": str(repo), "FALCONET_HOME": "/tmp/falconet-nobody"},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--tag", "a", "--disable-tag", "b"], 2, "--tag cannot be combined"),
        (["--min-priority", "loud"], 2, "unknown priority"),
        (["--rule-matching", "some"], 2, "unknown rule_matching"),
        (["--source", "nosuch"], 2, "unknown source"),
        (["-o", "yaml"], 2, "unknown value"),
    ],
)
def test_bad_options_fail_in_one_line(
    run_cli: Any, shared_dir: Path, tmp_path: Path, args: list[str], status: int, message: str
) -> None:
    capture = str(shared_dir / "upstream-captures/cat_write.scap")
    done = run_cli("run", "-r", str(_rules_file(tmp_path, "")), "--replay", capture, *args)
    assert done.returncode == status, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_invalid_and_missing_rules_files(run_cli: Any, tmp_path: Path, shared_dir: Path) -> None:
    capture = str(shared_dir / "upstream-captures/cat_write.scap")
    broken = tmp_path / "broken.yaml"
    broken.write_text("- rule: x\n  desc: d\n  condition: evt.type = = open\n  output: o\n")
    invalid = run_cli("run", "-r", str(broken), "--replay", capture)
    assert invalid.returncode == 1
    assert "invalid rules file" in invalid.stderr and "Traceback" not in invalid.stderr
    missing = run_cli("run", "-r", str(tmp_path / "nope.yaml"), "--replay", capture)
    assert missing.returncode == 3
    assert "does not exist" in missing.stderr


def test_without_rules_the_default_feed_is_installed(
    run_cli: Any, falconet_home: Path, shared_dir: Path
) -> None:
    capture = str(shared_dir / "upstream-captures/cat_write.scap")
    done = run_cli("run", "--replay", capture)
    assert done.returncode == 0, done.stderr
    installed = sorted(p.name for p in (falconet_home / "rules").iterdir())
    assert installed == ["falconet_rules.yaml"]
    # Second run: already installed, nothing to install.
    again = run_cli("run", "--replay", capture)
    assert again.returncode == 0 and "installing" not in again.stderr


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def test_k8s_audit_webhook_until_sigterm(
    falconet_home: Path, shared_dir: Path, tmp_path: Path
) -> None:
    rules = shared_dir / "upstream-rules/k8s_audit_rules.yaml"
    event = (shared_dir / "upstream-events/k8s_audit/create_nginx_pod_privileged.json").read_bytes()
    alerts_file = tmp_path / "alerts.json"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), FALCONET_HOME=str(falconet_home))
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "cli", "run", "-r", str(rules), "--source", "k8s_audit"),
            *("--listen", "127.0.0.1:0", "-o", "json", "--output-file", str(alerts_file)),
            "--no-web",  # the web endpoints have their own tests (test_daemon.py)
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "listening on http://127.0.0.1:" in line, line
        url = line.split()[-1]
        assert _post(url, event) == 200
        _wait_for_lines(alerts_file, 1)
        # logrotate: move the file away, SIGUSR1, the next alert goes to a new file.
        rotated = alerts_file.rename(tmp_path / "alerts.json.1")
        process.send_signal(signal.SIGUSR1)
        wait_for(alerts_file.exists)
        assert _post(url, event) == 200
        _wait_for_lines(alerts_file, 1)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    printed = _json_alerts(stdout)
    assert len(printed) == 2 and {a["source"] for a in printed} == {"k8s_audit"}
    assert "Create Privileged Pod" in {a["rule"] for a in printed}
    first = _json_alerts(rotated.read_text())
    second = _json_alerts(alerts_file.read_text())
    assert first[0]["rule"] == second[0]["rule"] == printed[0]["rule"]
    assert json.loads(stderr.splitlines()[-1])["events_by_source"] == {"k8s_audit": 2}


def _wait_for_lines(path: Path, count: int) -> None:
    wait_for(lambda: path.exists() and len(path.read_text().splitlines()) >= count)


def test_github_webhook_needs_its_secret(run_cli: Any, shared_dir: Path) -> None:
    rules = str(shared_dir / "upstream-rules/github.yaml")
    done = run_cli(
        "run", "-r", rules, "--listen", "127.0.0.1:0", env={"FALCONET_GITHUB_WEBHOOK_SECRET": ""}
    )
    assert done.returncode == 2
    assert (
        "needs a shared secret" in done.stderr and "FALCONET_GITHUB_WEBHOOK_SECRET" in done.stderr
    )


def test_file_sources_cannot_listen(run_cli: Any, shared_dir: Path) -> None:
    rules = str(shared_dir / "upstream-rules/okta_rules.yaml")
    done = run_cli("run", "-r", rules, "--listen", "127.0.0.1:0")
    assert done.returncode == 2
    assert "the okta source reads files only" in done.stderr


def test_http_gets_json_alerts_while_stdout_and_program_get_text(
    run_cli: Any, shared_dir: Path, tmp_path: Path
) -> None:
    from tests.support.http_server import StaticServer

    server = StaticServer().start()
    piped = tmp_path / "program.txt"
    try:
        done = run_cli(
            *("run", "-r", str(_specs(shared_dir) / RULE_OPEN_FROM_CAT)),
            *("--replay", str(shared_dir / "upstream-captures/cat_write.scap")),
            *("--output-http", f"{server.url}/alerts", "--output-program", f"cat >> {piped}"),
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    text = done.stdout.splitlines()
    posted = [json.loads(r.body) for r in server.requests if r.method == "POST"]
    # falcosidekick reads Falco's JSON alert whatever -o says; the same alerts, in order.
    assert [p["output"] for p in posted] == text and len(text) == 4
    assert all(p["rule"] == "open_from_cat" for p in posted)
    assert piped.read_text().splitlines() == text


def test_a_closed_stdout_pipe_ends_the_output_quietly(tmp_path: Path, falconet_home: Path) -> None:
    """`falconet run ... | head -1`: the reader goes away after one line; no error per alert."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- rule: Any create\n  desc: d\n  condition: ka.verb=create\n"
        "  output: created (user=%ka.user.name)\n  priority: WARNING\n  source: k8s_audit\n"
    )
    event = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "a", "level": "Request",
        "stage": "ResponseComplete", "verb": "create", "user": {"username": "u"},
        "objectRef": {"resource": "pods", "namespace": "n", "name": "p"},
        "stageTimestamp": "2026-12-08T00:00:00.000000Z",
    }  # fmt: skip
    events = tmp_path / "events.json"
    events.write_text("\n".join(json.dumps({**event, "auditID": str(i)}) for i in range(5000)))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "FALCONET_HOME": str(falconet_home)}
    command = [sys.executable, "-m", "cli", "run", "--source", "k8s_audit", "--replay",
               str(events), "-r", str(rules)]  # fmt: skip
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()  # as `head -1` exits
        stderr = process.stderr.read().decode()
        status = process.wait(timeout=120)
    assert b"created (user=u)" in first
    assert status == 0, stderr
    assert "Broken pipe" not in stderr and "error" not in stderr.lower()
    assert "Events detected: 5000" in stderr  # the run went to its end, summary on stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min-priority", "bogus"], "unknown priority 'bogus'"),
        (["--source", "k8s_audit", "--listen", "bogus"], "invalid listen address 'bogus'"),
        (["--web", "nonsense"], "is not HOST:PORT"),
        (["--log-format", "xml"], "text|json|color"),
    ],
)
def test_option_values_are_checked_before_any_work(
    run_cli: Any, falconet_home: Path, args: list[str], message: str
) -> None:
    """No rules installed, no endpoint opened, for a value the run would refuse later."""
    done = run_cli("run", *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert not (falconet_home / "rules").exists()
    assert "web endpoints on" not in done.stderr
