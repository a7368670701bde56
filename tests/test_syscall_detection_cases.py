"""Falco 0.34.1's syscall detection cases (falco_tests.yaml, falco_tests_exceptions.yaml) whose
trace is in ../shared/upstream-captures, run end to end at the engine level: the case's rules
files loaded, its selection applied (run_tags = falco -t, disable_tags = -T, disabled_rules = -D,
priority), the capture replayed through the state tracker and every event evaluated; then its
expectations (detect, detect_level, detect_counts) checked. Falco 0.34.1 evaluated enter events
too (open_from_cat fires 8 times on cat_write.scap: 4 enters and 4 exits), so both directions are
evaluated here.

Cases that test the falco binary rather than detection (falco.yaml files, exit statuses, output
files, gRPC, stdout/stderr text) are skipped with that reason: they belong to `falconet run`.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

SPECS = Path(__file__).resolve().parents[2] / "shared/upstream-events/falco-0.34.1-test-specs"
CAPTURES = SPECS.parent.parent / "upstream-captures"
SUITES = ("falco_tests.yaml", "falco_tests_exceptions.yaml")
NOT_DETECTION = (
    "conf_file",
    "exit_status",
    "grpc",
    "stdout_contains",
    "stderr_contains",
    "output_strictly_contains",
    "json_output",
)


class _MuxLoader(yaml.SafeLoader):
    """The suite's files use avocado's `!mux` tag on mappings."""


_MuxLoader.add_constructor("!mux", lambda loader, node: loader.construct_mapping(node))


def _cases() -> list[tuple[str, dict[str, Any]]]:
    if not SPECS.is_dir() or not CAPTURES.is_dir():
        return []
    captures = set(os.listdir(CAPTURES))
    cases = []
    for suite in SUITES:
        document = yaml.load((SPECS / suite).read_text(), Loader=_MuxLoader)
        for name, case in document["trace_files"].items():
            trace = os.path.basename(str(case.get("trace_file", "")))
            if "validate_rules_file" not in case and trace in captures:
                cases.append((f"{suite}:{name}", case))
    return cases


CASES = _cases()


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _select(rules: list[Any], case: dict[str, Any]) -> list[Any]:
    run_tags = set(_as_list(case.get("run_tags")))
    disable_tags = set(_as_list(case.get("disable_tags")))
    disabled = [re.compile(p) for p in _as_list(case.get("disabled_rules"))]
    selected = []
    for rule in rules:
        if not rule.enabled or rule.source != "syscall":
            continue
        if run_tags and rule.tags.isdisjoint(run_tags):
            continue
        if disable_tags and not rule.tags.isdisjoint(disable_tags):
            continue
        if any(p.search(rule.name) for p in disabled):  # falco -D took a regex
            continue
        selected.append(rule)
    return selected


def _run_case(case: dict[str, Any]) -> Counter[tuple[str, str]]:
    from engine.loader import load_rules_files
    from engine.rule_items import parse_priority, priority_rank
    from engine.ruleset import Ruleset
    from engine.sources.syscall import event_type_of
    from engine.sources.syscall.replay import open_replay

    files = []
    for entry in _as_list(case.get("rules_file")):
        path = SPECS / entry
        files.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    loaded = load_rules_files(files, use_cache=False)
    assert loaded.successful, [e.message for r in loaded.results for e in r.errors]
    rules = _select(list(loaded.rules), case)
    limit = priority_rank(parse_priority(case.get("priority", "debug")) or "Debug")
    rules = [r for r in rules if r.rank <= limit]
    ruleset = Ruleset("syscall", rules, "first", event_type_of)
    alerts: Counter[tuple[str, str]] = Counter()
    trace = CAPTURES / os.path.basename(case["trace_file"])
    with open_replay(trace) as replay:
        for event in replay.events():
            for rule in ruleset.evaluate(event):
                if rule.output is not None:
                    rule.output.render(event)  # every alert's output must render
                alerts[(rule.name, rule.priority)] += 1
    return alerts


def _is_library_case(case: dict[str, Any]) -> bool:
    """Cases this module evaluates directly on the library. The others exercise the falco
    binary (config files, exit statuses, output formats, refusals of option combinations) and
    run through `falconet run` in test_detection_conformance.py; the two cases that use
    Falco 0.34.1's built-in default rules, which are not in ../shared, run nowhere."""
    return (
        "rules_file" in case
        and not any(key in case for key in NOT_DETECTION)
        and not ("run_tags" in case and ("disable_tags" in case or "disabled_rules" in case))
    )


LIBRARY_CASES = [(name, case) for name, case in CASES if _is_library_case(case)]


@pytest.mark.skipif(not CASES, reason="../shared upstream specs or captures are absent")
@pytest.mark.parametrize("case", [c for _, c in LIBRARY_CASES], ids=[n for n, _ in LIBRARY_CASES])
def test_falco_0_34_1_syscall_detection_case(case: dict[str, Any]) -> None:
    alerts = _run_case(case)
    if case.get("detect") is False:
        assert not alerts, alerts
        return
    if case.get("detect"):
        assert alerts
    from engine.rule_items import parse_priority

    seen_levels = {priority for _, priority in alerts}
    for level in _as_list(case.get("detect_level")):
        assert parse_priority(level) in seen_levels, (level, alerts)
    by_rule = Counter()
    for (rule, _), count in alerts.items():
        by_rule[rule] += count
    for expected in _as_list(case.get("detect_counts")):
        for rule, count in expected.items():
            assert by_rule[rule] == count, (rule, count, dict(by_rule))


@pytest.mark.skipif(not CASES, reason="../shared upstream specs or captures are absent")
def test_cat_write_alerts_match_falco_expected_output() -> None:
    """output_files/single_rule_with_cat_write.txt (stdout_output_strict): time, priority and
    rendered output of every alert, in order."""
    from engine.fields import catalog
    from engine.loader import load_valid_rules, rulesets_for
    from engine.sources.syscall.replay import open_replay

    expected = (SPECS.parent / "expected-output" / "single_rule_with_cat_write.txt").read_text()
    rules = rulesets_for(load_valid_rules([SPECS / "rules/single_rule.yaml"])).by_source["syscall"]
    syscall = catalog("syscall")
    assert syscall is not None
    iso = syscall.extractor("evt.time.iso8601")[1]
    lines = []
    with open_replay(CAPTURES / "cat_write.scap") as replay:
        for event in replay.events():
            for rule in rules.evaluate(event):
                stamp = iso(event).replace("Z", "+0000")
                lines.append(f"{stamp}: {rule.priority} {rule.output.render(event)}")
    assert lines == expected.splitlines()
