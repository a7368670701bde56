"""Falco 0.34.1's detection regression cases through falconet's run loop: every case of
falco_tests.yaml and falco_tests_exceptions.yaml whose trace is in ../shared/upstream-captures,
and every case of falco_k8s_audit_tests.yaml, with the case's rules files, options (run_tags,
disable_tags, disabled_rules, priority, all_events, json_output, json_include_*, time_iso_8601,
the output or syscall_event_drops configuration its conf_file stood for) and expectations
(detect, detect_level, detect_counts, stdout_contains/not_contains, output_strictly_contains,
exit_status and stderr_contains/not_contains of the error and drop-monitoring cases).

Every case runs through the library (engine.runner.run); CLI_CASES also run through the real
`falconet run` process. Falco 0.34.1 evaluated enter events as well as exit events (open_from_cat
fires 8 times on cat_write.scap), so syscall cases run with all_events.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.sinks import CollectingSink
from tests.test_source_k8s_audit_conformance import LIST_CONTAINS_ERROR, _rules_path, _trace_path
from tests.test_source_k8s_audit_conformance import _cases as _k8s_cases
from tests.test_syscall_detection_cases import CAPTURES, SPECS
from tests.test_syscall_detection_cases import CASES as SYSCALL_CASES

SHARED = SPECS.parent.parent
EXPECTED_OUTPUTS = SHARED / "upstream-events/expected-output"
# falco 0.34.1 without -r loaded its built-in rules: falco-rules 0.1.0 (pinned here).
BUILTIN_RULES = SPECS / "pinned-rules/falco-rules-0.1.0/falco_rules.yaml"
HOSTNAME = "test-falco-hostname"  # what the 0.34.1 suite set FALCO_HOSTNAME to

NOT_IMPLEMENTED = {
    "grpc_unix_socket_outputs": "Falco removed the gRPC output and server in 0.44.0 "
    "(deprecated in 0.43, falco#3798), so falconet does not implement it; alerts leave as JSON "
    "over HTTP/file/program/syslog",
}
# The syscall_event_drops sections of falco 0.34.1's test/confs/drops_*.yaml (not in
# ../shared; their other keys only enable stdout_output and log_stderr, as falconet always does).
DROPS_CONFS: dict[str, dict[str, Any]] = {
    f"confs/drops_{name}.yaml": {"rate": 0.03333, "max_burst": 10, "simulate_drops": True, **extra}
    for name, extra in {
        "none": {"actions": ["log"], "simulate_drops": False},
        "ignore": {"actions": ["ignore"]},
        "ignore_log": {"actions": ["ignore", "log"]},
        "threshold_oor": {"threshold": 1.1, "actions": ["ignore"]},
        "threshold_neg": {"threshold": -1, "actions": ["ignore"]},
        "log": {"actions": ["log"]},
        "alert": {"actions": ["alert"]},
        "exit": {"actions": ["exit"]},
    }.items()
}
# conf_files falconet stands in for: where alerts go (the output they configured), or loading
# the k8saudit + json plugins (falconet's built-in k8s_audit source); the drops confs print to
# stdout.
CONF_OUTPUTS = {
    "confs/stdout_output.yaml": None,
    "BUILD_DIR/test/confs/plugins/k8s_audit.yaml": None,
    "confs/file_output.yaml": "file",
    "confs/program_output.yaml": "program",
    **dict.fromkeys(DROPS_CONFS),
}
# What falconet says where Falco's message differs (falconet's own one-line error).
STDERR_EQUIVALENTS = {
    "Runtime error: You can not specify both disabled .-D/-T. and enabled .-t. rules. "
    "Exiting.": "--tag cannot be combined",
}
CLI_CASES = {
    "falco_tests.yaml:cat_write",
    "falco_tests.yaml:run_tags_a",
    "falco_tests.yaml:disable_tags_a",
    "falco_tests.yaml:stdout_output_strict",
    "falco_tests.yaml:stdout_output_json_strict",
    "falco_tests.yaml:file_output_strict",
    "falco_tests.yaml:program_output_strict",
    "falco_tests.yaml:disabled_and_enabled_rules_1",
    "falco_tests.yaml:detect_counts",
    *(f"falco_tests.yaml:monitor_syscall_drops_{kind}" for kind in ("alert", "exit")),
    *(f"falco_tests.yaml:monitor_syscall_drops_{kind}" for kind in ("ignore_and_log", "log")),
    "falco_tests.yaml:monitor_syscall_drops_threshold_oor",
    "falco_tests_exceptions.yaml:rule_exception_single_field",
    "falco_k8s_audit_tests.yaml:create_disallowed_pod",
    "falco_k8s_audit_tests.yaml:user_outside_allowed_set",
}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _all_cases() -> list[tuple[str, dict[str, Any]]]:
    cases = [(name, dict(case, _kind="syscall")) for name, case in SYSCALL_CASES]
    cases += [
        (f"falco_k8s_audit_tests.yaml:{name}", dict(case, _kind="k8s_audit"))
        for name, case in _k8s_cases()
    ]
    return cases


CASES = _all_cases()


def _params() -> list[Any]:
    params = []
    for name, case in CASES:
        marks = []
        short = name.split(":", 1)[1]
        if short in NOT_IMPLEMENTED:
            marks.append(pytest.mark.xfail(reason=NOT_IMPLEMENTED[short], strict=True))
        for way in ("library", "cli") if name in CLI_CASES else ("library",):
            params.append(pytest.param(name, case, way, id=f"{way}:{name}", marks=marks))
    return params


# -- running a case ------------------------------------------------------------------------------


class Outcome:
    """What a run produced: alerts (rule, priority), stdout lines, output files, stderr."""

    def __init__(self, lines: list[str], stderr: str = "", status: int = 0) -> None:
        self.lines = lines
        self.stderr = stderr
        self.status = status
        self.files: dict[str, list[str]] = {}


def _rules_files(case: dict[str, Any]) -> list[Path]:
    if case["_kind"] == "k8s_audit":
        return [_rules_path(SHARED, entry) for entry in case["rules_file"]]
    if "rules_file" not in case:
        return [BUILTIN_RULES]
    return [SPECS / entry for entry in _as_list(case["rules_file"])]


def _replay_path(case: dict[str, Any]) -> Path:
    if case["_kind"] == "k8s_audit":
        return _trace_path(SHARED, case["addl_cmdline_opts"])
    return CAPTURES / os.path.basename(case["trace_file"])


def _output_files(case: dict[str, Any], tmp_path: Path) -> dict[str, Path]:
    """The case's output file (as the conf_file would have written it) → where it goes here."""
    files = {}
    kind = CONF_OUTPUTS.get(case.get("conf_file", ""))
    for expectation in case.get("output_strictly_contains", []):
        for target in expectation:
            if target != "stdout" and kind is not None:
                files[target] = tmp_path / f"{kind}_output.txt"
    return files


def _request_options(case: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": case["_kind"],
        "json_output": bool(case.get("json_output")),
        "iso8601": bool(case.get("time_iso_8601")),
        "all_events": case["_kind"] == "syscall",
        "tags": _as_list(case.get("run_tags")),
        "disable_tags": _as_list(case.get("disable_tags")),
        "disable_rules": [_wildcard(p) for p in _as_list(case.get("disabled_rules"))],
        "min_priority": str(case.get("priority", "debug")),
    }


def _wildcard(regex: str) -> str:
    """falco 0.34.1's -D searched rule names with a regex; the cases' patterns are plain text
    and `.*`, i.e. a `*` wildcard pattern matched anywhere in the name."""
    return f"*{regex.replace('.*', '*')}*"


def _sink_specs(case: dict[str, Any], files: dict[str, Path]) -> list[dict[str, str]]:
    specs = []
    kind = CONF_OUTPUTS.get(case.get("conf_file", ""))
    for path in files.values():
        if kind == "file":
            specs.append({"type": "file", "path": str(path)})
        elif kind == "program":
            specs.append({"type": "program", "command": f"cat >> {path}"})
    return specs


def _run_library(case: dict[str, Any], tmp_path: Path, monkeypatch: Any, caplog: Any) -> Outcome:
    """The run loop in this process; stderr is what falconet would print: its log lines, the
    summary, the error."""
    from engine.drops_monitor import DropsExitError
    from engine.errors import EngineError
    from engine.runner import run

    monkeypatch.setenv("FALCO_HOSTNAME", HOSTNAME)
    caplog.set_level("INFO")
    options = _request_options(case)
    files = _output_files(case, tmp_path)
    sink = CollectingSink()
    try:
        stats = run(_library_request(case, options, files), extra_sinks=[sink])
    except DropsExitError as error:
        stderr = f"{caplog.text}{error.run_stats.summary_text()}\nerror: {error}"
        return Outcome(_lines(sink, options), stderr, 1)
    except EngineError as error:
        return Outcome([], f"{caplog.text}error: {error}\nhint: {error.hint}", 1)
    outcome = Outcome(_lines(sink, options), f"{caplog.text}{stats.summary_text()}")
    outcome.files = {k: v.read_text().splitlines() for k, v in files.items() if v.exists()}
    return outcome


def _lines(sink: CollectingSink, options: dict[str, Any]) -> list[str]:
    return [alert.line(options["json_output"]) for alert in sink.alerts]


def _library_request(case: dict[str, Any], options: dict[str, Any], files: dict[str, Path]) -> Any:
    """The case as a RunRequest (its drops conf is checked here: a bad one raises)."""
    from engine.drops_monitor import DropsConfig
    from engine.output import JsonOptions
    from engine.runner import RunRequest, Selection

    return RunRequest(
        rules_files=_rules_files(case),
        source=options["source"],
        replay=str(_replay_path(case)),
        json_output=options["json_output"],
        iso8601=options["iso8601"],
        all_events=options["all_events"],
        selection=Selection(
            tags=options["tags"],
            disable_tags=options["disable_tags"],
            disable_rules=options["disable_rules"],
            min_priority=options["min_priority"],
        ),
        outputs=_sink_specs(case, files),
        stdout=False,
        json_options=JsonOptions(
            include_output=case.get("json_include_output_property", True),
            include_tags=case.get("json_include_tags_property", True),
        ),
        drops=DropsConfig.parse(DROPS_CONFS.get(case.get("conf_file", ""), {})),
    )


def _run_cli(case: dict[str, Any], tmp_path: Path, run_cli: Any, home: Path) -> Outcome:
    options = _request_options(case)
    drops = DROPS_CONFS.get(case.get("conf_file", ""))
    if drops is not None:  # the case's falco.yaml section, as falconet.yaml
        config = home / "config/falconet.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(json.dumps({"syscall_event_drops": drops}))
    files = _output_files(case, tmp_path)
    args = ["run", "--source", options["source"], "--replay", str(_replay_path(case))]
    for path in _rules_files(case):
        args += ["-r", str(path)]
    args += ["-o", "json"] if options["json_output"] else []
    args += ["--time-format", "iso8601"] if options["iso8601"] else []
    args += ["--all-events"] if options["all_events"] else []
    args += ["--min-priority", options["min_priority"]]
    for flag, key in (("--tag", "tags"), ("--disable-tag", "disable_tags")):
        for value in options[key]:
            args += [flag, value]
    for value in options["disable_rules"]:
        args += ["--disable-rule", value]
    for spec in _sink_specs(case, files):
        args += ["--output-file", spec["path"]] if spec["type"] == "file" else []
        args += ["--output-program", spec["command"]] if spec["type"] == "program" else []
    done = run_cli(*args, env={"FALCO_HOSTNAME": HOSTNAME})
    outcome = Outcome(done.stdout.splitlines(), done.stderr, done.returncode)
    outcome.files = {k: v.read_text().splitlines() for k, v in files.items() if v.exists()}
    return outcome


# -- expectations --------------------------------------------------------------------------------


def _alerts(outcome: Outcome, json_output: bool) -> Counter[tuple[str, str]]:
    """(rule, priority) per alert line, read back from what was printed."""
    alerts: Counter[tuple[str, str]] = Counter()
    for line in outcome.lines:
        if json_output:
            document = json.loads(line)
            alerts[(document["rule"], document["priority"])] += 1
        else:
            alerts[("?", line.split(": ", 1)[1].split(" ", 1)[0])] += 1
    return alerts


def _check_strict(outcome: Outcome, case: dict[str, Any], json_output: bool) -> None:
    """falco_test.py's output_strictly_contains: each expected line is among the output's."""
    for expectation in case.get("output_strictly_contains", []):
        for target, expected_file in expectation.items():
            got = outcome.lines if target == "stdout" else outcome.files.get(target, [])
            expected = (EXPECTED_OUTPUTS / Path(expected_file).name).read_text().splitlines()
            if json_output:
                # Key order and spacing are the JSON writer's; the documents must be equal.
                got_documents = [json.loads(line) for line in got]
                for line in expected:
                    assert json.loads(line) in got_documents, line
            else:
                assert set(expected) <= set(got), sorted(set(expected) - set(got))


def _check(outcome: Outcome, case: dict[str, Any], rules_by_alert: Counter[str] | None) -> None:
    from engine.output import Priority

    json_output = bool(case.get("json_output"))
    _check_stderr(outcome, case)
    if case.get("exit_status"):
        assert outcome.status != 0
        return
    assert outcome.status == 0, outcome.stderr
    stdout = "\n".join(outcome.lines)
    for pattern in _as_list(case.get("stdout_contains")):
        assert re.search(pattern, stdout), (pattern, stdout[:2000])
    for text in _as_list(case.get("stdout_not_contains")):
        assert text not in stdout
    _check_strict(outcome, case, json_output)
    priorities = {p for p in _levels(outcome, json_output)}
    if case.get("detect") is False:
        assert not outcome.lines, outcome.lines[:5]
        return  # falco_test.py checks levels and counts of detecting cases only
    if case.get("detect"):
        assert outcome.lines
    for level in _as_list(case.get("detect_level")):
        assert Priority.parse(level) in priorities, (level, priorities)
    if rules_by_alert is not None:
        for expected in _as_list(case.get("detect_counts")):
            for rule, count in expected.items():
                assert rules_by_alert[rule] == count, (rule, count, dict(rules_by_alert))


def _check_stderr(outcome: Outcome, case: dict[str, Any]) -> None:
    """falco_test.py's stderr_contains (regular expressions) and stderr_not_contains, for the
    cases whose stderr is their subject (errors, drop monitoring; time_iso_8601's is Falco's log
    line timestamps, which falconet's log format does not copy); a drops case's
    stdout_not_contains too (its exit_status ends _check before stdout is read)."""
    if not case.get("exit_status") and case.get("conf_file") not in DROPS_CONFS:
        return
    for pattern in _as_list(case.get("stderr_contains")):
        if pattern in STDERR_EQUIVALENTS:
            assert STDERR_EQUIVALENTS[pattern] in outcome.stderr, (pattern, outcome.stderr)
        else:
            assert re.search(pattern, outcome.stderr), (pattern, outcome.stderr[-2000:])
    for text in _as_list(case.get("stderr_not_contains")):
        assert text not in outcome.stderr, (text, outcome.stderr[-2000:])
    if case.get("conf_file") in DROPS_CONFS:
        assert outcome.status == case.get("exit_status", 0), outcome.stderr[-2000:]
        for text in _as_list(case.get("stdout_not_contains")):
            assert all(text not in line for line in outcome.lines), text


def _levels(outcome: Outcome, json_output: bool) -> list[Any]:
    from engine.output import Priority

    return [Priority.parse(priority) for (_, priority) in _alerts(outcome, json_output)]


def _rule_counts(outcome: Outcome, json_output: bool) -> Counter[str] | None:
    """Alerts per rule; from text lines the rule name is not printed, so None."""
    if not json_output:
        return None
    counts: Counter[str] = Counter()
    for (rule, _), n in _alerts(outcome, True).items():
        counts[rule] += n
    return counts


def _prepare(case: dict[str, Any]) -> dict[str, Any]:
    """The case as falconet runs it: detect_counts need rule names, so JSON alerts are read
    (text lines do not name the rule); strict text comparisons keep the case's own format."""
    if "conf_file" in case and case["conf_file"] not in CONF_OUTPUTS:
        pytest.fail(f"{case['conf_file']} configures what falconet does not implement")
    if case.get("detect_counts") and not case.get("json_output"):
        return dict(case, json_output=True, _counts_from_json=True)
    return case


def _k8s_known_gap(case: dict[str, Any]) -> None:
    if case["_kind"] != "k8s_audit":
        return
    from engine.loader import load_rules_files

    loaded = load_rules_files(_rules_files(case))
    errors = [m.message for r in loaded.results for m in r.errors]
    if errors and all(LIST_CONTAINS_ERROR in error for error in errors):
        pytest.xfail(
            "the engine_v4 compat rules use `contains` on list fields, which Falco 0.34.1 "
            "accepted and current libsinsp (which falconet follows) refuses"
        )


@pytest.mark.skipif(not CASES, reason="../shared upstream specs or captures are absent")
@pytest.mark.parametrize(("name", "case", "way"), _params())
def test_falco_0_34_1_detection_case(
    name: str, case: dict[str, Any], way: str, tmp_path: Path, monkeypatch: Any, request: Any
) -> None:
    _k8s_known_gap(case)
    case = _prepare(case)
    if way == "cli":
        run_cli = request.getfixturevalue("run_cli")
        outcome = _run_cli(case, tmp_path, run_cli, request.getfixturevalue("falconet_home"))
    else:
        outcome = _run_library(case, tmp_path, monkeypatch, request.getfixturevalue("caplog"))
    _check(outcome, case, _rule_counts(outcome, bool(case.get("json_output"))))
