"""Response actions fed hostile event data, against real programs, real files and symlinks in
temp dirs, and real processes: field values cannot add arguments, paths cannot lead through
symlinks, pids cannot be -1, and terminate works for an upstream rule that prints no pid."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.output import Priority
from engine.response.actions.process_terminate import start_time_ns
from engine.response.engine import ResponseEngine
from engine.response.errors import ResponseRulesError
from engine.response.rules import parse_rules
from engine.sinks import Alert, internal_alert
from tests.support.response import respond_once

PRINT_ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"
HOSTILE_VALUES = [
    "a b",
    "x' 'y",
    'q" --evil "z',
    "; rm -rf / #",
    "$(touch /tmp/pwned) `id`",
    "--help",
    "",
    "tab\there\nnewline",
]


def alert(**fields: Any) -> dict[str, Any]:
    return {
        "rule": "Some rule",
        "priority": "Warning",
        "source": "syscall",
        "output_fields": {"proc.name": "evil", **fields},
    }


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_a_field_value_stays_one_argument_in_a_string_command(value: str) -> None:
    command = (
        f"{sys.executable} -c '{PRINT_ARGV}' --file=${{fd.name}} ${{fd.name}} \"x ${{fd.name}}\""
    )
    outcome = respond_once("exec:script", alert(**{"fd.name": value}), command=command)
    assert outcome.status == "succeeded", outcome.error
    argv = json.loads(outcome.changed["stdout"])
    assert argv == [f"--file={value}", value, f"x {value}"]


def test_a_field_value_stays_one_argument_in_a_list_command() -> None:
    value = "a b' \"c"
    outcome = respond_once(
        "exec:script",
        alert(**{"fd.name": value}),
        command=[sys.executable, "-c", PRINT_ARGV, "${fd.name}", "pre-${proc.name}-post"],
    )
    assert json.loads(outcome.changed["stdout"]) == [value, "pre-evil-post"]


def test_the_program_never_comes_from_event_data() -> None:
    with pytest.raises(ResponseRulesError, match=r"program .* contains a placeholder"):
        parse_rules(
            {
                "rules": [
                    {
                        "name": "r",
                        "match": {},
                        "actions": [
                            {"action": "exec:script", "parameters": {"command": "${proc.exe} -x"}}
                        ],
                    }
                ]
            }
        )


# -- file:quarantine ---------------------------------------------------------------------------


def test_a_symlinked_parent_directory_is_refused(tmp_path: Path) -> None:
    precious = tmp_path / "etc"
    precious.mkdir()
    (precious / "passwd").write_text("root:x:0:0\n")
    attacker = tmp_path / "tmp"
    attacker.mkdir()
    (attacker / "x").symlink_to(precious)  # /tmp/x -> /etc
    outcome = respond_once(
        "file:quarantine",
        alert(**{"fd.name": str(attacker / "x" / "passwd")}),
        directory=str(tmp_path / "vault"),
    )
    assert outcome.status == "refused", outcome.error
    assert "symlink" in (outcome.error or "")
    assert (precious / "passwd").read_text() == "root:x:0:0\n"


def test_a_symlink_higher_up_is_refused_too(tmp_path: Path) -> None:
    real = tmp_path / "real" / "deep"
    real.mkdir(parents=True)
    (real / "file").write_text("keep")
    (tmp_path / "hop").symlink_to(tmp_path / "real")
    outcome = respond_once(
        "file:quarantine",
        alert(**{"fd.name": str(tmp_path / "hop" / "deep" / "file")}),
        directory=str(tmp_path / "vault"),
    )
    assert outcome.status == "refused" and (real / "file").read_text() == "keep"


def test_dot_dot_components_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "f").write_text("keep")
    outcome = respond_once(
        "file:quarantine",
        alert(**{"fd.name": str(tmp_path / "a" / ".." / "f")}),
        directory=str(tmp_path / "vault"),
    )
    assert outcome.status == "refused" and (tmp_path / "f").exists()


def test_identical_content_already_held_is_recorded_before_the_source_goes(
    tmp_path: Path,
) -> None:
    vault = tmp_path / "vault"
    first, second = tmp_path / "one", tmp_path / "two"
    first.write_bytes(b"same payload")
    second.write_bytes(b"same payload")
    digest = hashlib.sha256(b"same payload").hexdigest()
    assert (
        respond_once(
            "file:quarantine", alert(**{"fd.name": str(first)}), directory=str(vault)
        ).status
        == "succeeded"
    )
    outcome = respond_once(
        "file:quarantine", alert(**{"fd.name": str(second)}), directory=str(vault)
    )
    assert outcome.status == "succeeded", outcome.error
    assert not second.exists() and outcome.changed["already_held"] is True
    records = [json.loads(p.read_text()) for p in vault.glob(f"{digest}.*.json")]
    assert sorted(r["original_path"] for r in records) == [str(first), str(second)]
    held = next(r for r in records if r["original_path"] == str(second))
    assert held["already_held"] is True and held["inode"] > 0


def test_a_tampered_copy_in_quarantine_keeps_the_source(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir(mode=0o700)
    source = tmp_path / "dropper"
    source.write_bytes(b"payload")
    digest = hashlib.sha256(b"payload").hexdigest()
    (vault / digest).write_bytes(b"something else")  # a name that lies about its content
    outcome = respond_once(
        "file:quarantine", alert(**{"fd.name": str(source)}), directory=str(vault)
    )
    assert outcome.status == "failed" and source.read_bytes() == b"payload"


# -- process:terminate -------------------------------------------------------------------------


def _upstream_output_fields(shared: Path, pid: int) -> dict[str, Any]:
    """What `Read sensitive file untrusted`, unchanged, prints: no %proc.pid, no %proc.pid.ts."""
    rules = yaml.safe_load((shared / "upstream-rules" / "falco_rules.yaml").read_text())
    (rule,) = [r for r in rules if r.get("rule") == "Read sensitive file untrusted"]
    assert "%proc.pid" not in rule["output"]
    return {
        "fd.name": "/etc/shadow",
        "proc.name": "python3",
        "proc.exepath": os.readlink(f"/proc/{pid}/exe"),
        "proc.cmdline": "python3 -c ...",
    }


def _sleeper() -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return child


def _terminate_engine() -> ResponseEngine:
    rules = {
        "rules": [
            {
                "name": "Kill untrusted readers",
                "match": {"rules": ["Read sensitive file untrusted"]},
                "actions": [{"action": "process:terminate", "parameters": {"grace_period": 2}}],
            }
        ]
    }
    return ResponseEngine(parse_rules(rules))


def _upstream_alert(shared: Path, pid: int, origin: dict[str, int] | None) -> Alert:
    base = internal_alert("x", "x", Priority.WARNING, {}, "host")
    document = {
        **base.document,
        "rule": "Read sensitive file untrusted",
        "source": "syscall",
        "output_fields": _upstream_output_fields(shared, pid),
    }
    return Alert(base.text, document, origin)


def test_the_upstream_rule_unchanged_terminates_the_events_own_process(shared_dir: Path) -> None:
    child = _sleeper()
    engine = _terminate_engine()
    try:
        origin = {
            "proc.pid": child.pid,
            "proc.pid.ts": start_time_ns(child.pid),
            "thread.tid": child.pid,
        }
        (outcome,) = engine.handle(_upstream_alert(shared_dir, child.pid, origin))
        assert outcome.status == "succeeded", outcome.error
        assert child.wait(5) == -signal.SIGTERM
    finally:
        engine.close()
        if child.poll() is None:
            child.kill()


def test_the_events_start_time_protects_a_reused_pid(shared_dir: Path) -> None:
    child = _sleeper()
    engine = _terminate_engine()
    try:
        earlier = start_time_ns(child.pid) - 5_000_000_000  # the event's process started earlier
        origin = {"proc.pid": child.pid, "proc.pid.ts": earlier, "thread.tid": child.pid}
        (outcome,) = engine.handle(_upstream_alert(shared_dir, child.pid, origin))
        assert outcome.status == "refused" and "reused" in (outcome.error or "")
        assert child.poll() is None
    finally:
        engine.close()
        child.kill()
        child.wait()


@pytest.mark.parametrize("pid", [-1, 0, 2**31, 2**64, "12.5", True])
def test_bad_pids_are_refused_clearly(pid: Any) -> None:
    outcome = respond_once("process:terminate", alert(**{"proc.pid": pid}), pid=pid)
    assert outcome.status in ("refused", "failed")
    error = outcome.error or ""
    assert "pid" in error and "Errno" not in error and "OSError" not in error
    if pid in (-1, 2**31, 2**64):
        assert outcome.status == "refused" and "not a process id" in error


def test_a_replayed_syscall_alert_carries_its_process_without_printing_it(
    shared_dir: Path, tmp_path: Path
) -> None:
    from engine.runner import RunRequest, run
    from tests.support.sinks import CollectingSink

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- rule: Any open\n  desc: d\n  condition: evt.type in (open, openat) and evt.dir = <\n"
        "  output: opened %fd.name\n  priority: WARNING\n"
    )
    sink = CollectingSink()
    capture = shared_dir / "upstream-captures" / "cat_write.scap"
    run(RunRequest(rules_files=[rules], replay=str(capture), stdout=False), extra_sinks=[sink])
    assert sink.alerts
    first = sink.alerts[0]
    assert "proc.pid" not in first.document["output_fields"]
    assert first.origin is not None and first.origin["proc.pid"] > 0
    assert first.origin["proc.pid.ts"] > 0 and "falconet.event" not in first.document
