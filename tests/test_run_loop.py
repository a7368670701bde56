"""The run loop as a library: ruleset swaps between two events (none lost, none evaluated twice),
selection (falco -t/-T/-D, minimum priority, matching), counters and Falco's alert shapes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.ruleset import RulesetSwitch
from engine.runner import (
    AlertFormatter,
    Detector,
    RunRequest,
    RunUsageError,
    Selection,
    load_rulesets,
    run,
)
from engine.sinks import OutputQueue
from tests.support.sinks import CollectingSink

K8S_RULE = """
- rule: {name}
  desc: every audit event
  condition: ka.verb != ""
  output: {name} saw %ka.verb of %ka.target.resource by %ka.user.name
  priority: {priority}
  source: k8s_audit
  tags: [{tags}]
"""


def _rules(tmp_path: Path, name: str, *rules: tuple[str, str, str]) -> Path:
    path = tmp_path / name
    path.write_text("".join(K8S_RULE.format(name=r, priority=p, tags=t) for r, p, t in rules))
    return path


def _events(shared_dir: Path) -> list[Any]:
    from engine.sources.readers import read_events

    return list(read_events("k8s_audit", shared_dir / "upstream-events/k8s_audit"))


def test_a_swap_lands_between_two_events(tmp_path: Path, shared_dir: Path) -> None:
    _, old = load_rulesets([_rules(tmp_path, "old.yaml", ("old rule", "WARNING", "a"))])
    _, new = load_rulesets([_rules(tmp_path, "new.yaml", ("new rule", "ERROR", "b"))])
    events = _events(shared_dir)
    switch = RulesetSwitch(old)
    sink = CollectingSink()
    outputs = OutputQueue([sink], capacity=0)
    detector = Detector(switch, outputs, AlertFormatter(hostname="h"))
    swap_after = len(events) // 3

    def stream() -> Iterator[Any]:
        for number, event in enumerate(events):
            if number == swap_after:
                switch.swap(new)  # what a reload does, while the loop is running
            yield event

    processed = detector.process(stream(), "k8s_audit")
    outputs.close()
    rules = [alert.document["rule"] for alert in sink.alerts]
    assert processed == len(events)
    # Every event raised exactly one alert, from the ruleset current when it was evaluated.
    assert rules == ["old rule"] * swap_after + ["new rule"] * (len(events) - swap_after)
    assert detector.stats.alerts_by_rule == {
        "old rule": swap_after,
        "new rule": len(events) - swap_after,
    }


def test_selection_tags_priority_and_matching(tmp_path: Path, shared_dir: Path) -> None:
    rules = _rules(
        tmp_path,
        "rules.yaml",
        ("r1", "NOTICE", "net"),
        ("r2", "CRITICAL", "net, k8s"),
        ("r3", "WARNING", "k8s"),
    )
    events = str(shared_dir / "upstream-events/k8s_audit/create_configmap.json")

    def fired(selection: Selection) -> set[str]:
        sink = CollectingSink()
        request = RunRequest([rules], replay=events, stdout=False, selection=selection)
        run(request, extra_sinks=[sink])
        return {alert.document["rule"] for alert in sink.alerts}

    assert fired(Selection()) == {"r1"}  # first match wins
    assert fired(Selection(matching="all")) == {"r1", "r2", "r3"}
    assert fired(Selection(matching="all", tags=["k8s"])) == {"r2", "r3"}
    assert fired(Selection(matching="all", disable_tags=["net"])) == {"r3"}
    assert fired(Selection(matching="all", disable_rules=["r*"])) == set()
    assert fired(Selection(matching="all", min_priority="warning")) == {"r2", "r3"}
    with pytest.raises(RunUsageError):
        fired(Selection(tags=["k8s"], disable_rules=["r1"]))


def test_alert_shapes_and_summary(tmp_path: Path, shared_dir: Path) -> None:
    rules = _rules(tmp_path, "rules.yaml", ("r1", "NOTICE", "net"))
    events = shared_dir / "upstream-events/k8s_audit/create_configmap.json"
    out = tmp_path / "alerts.txt"
    request = RunRequest(
        [rules],
        replay=str(events),
        stdout=False,
        iso8601=True,
        outputs=[{"type": "file", "path": str(out)}],
    )
    stats = run(request)
    line = out.read_text().splitlines()[0]
    assert line.startswith("20") and "+0000: Notice r1 saw create of configmaps by " in line
    assert stats.events_by_source == {"k8s_audit": 1}
    assert stats.alerts_by_rule == {"r1": 1}
    summary = stats.summary_text()
    assert "Events detected: 1" in summary and "   NOTICE: 1" in summary
    assert json.loads(json.dumps(stats.as_json()))["alerts_by_priority"] == {"Notice": 1}


SYSCALL_RULE = """
- rule: {name}
  desc: d
  condition: evt.type = {event_type} and evt.dir = <
  output: {name} %proc.name
  priority: NOTICE
"""


class SwapAfterReads(RulesetSwitch):
    """A switch whose reload lands after a few reads of `current` (i.e. just as the replay
    starts, after the replay has planned what to decode)."""

    def __init__(self, first: Any, second: Any, reads: int) -> None:
        self._first, self._second, self._left = first, second, reads

    @property
    def current(self) -> Any:  # type: ignore[override]
        self._left -= 1
        return self._first if self._left >= 0 else self._second


def test_a_swapped_in_ruleset_sees_event_types_the_old_one_did_not_need(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    capture = tmp_path / "stream.fncap"
    generator = str(REPO_ROOT / "bench/gen_syscall_stream.py")
    subprocess.run(
        [sys.executable, generator, str(capture), "--events", "20000"],
        check=True,
        capture_output=True,
    )
    old_file = tmp_path / "old.yaml"
    old_file.write_text(SYSCALL_RULE.format(name="old", event_type="ptrace"))
    new_file = tmp_path / "new.yaml"
    new_file.write_text(SYSCALL_RULE.format(name="new", event_type="mmap"))
    _, old = load_rulesets([old_file])
    _, new = load_rulesets([new_file])
    # The new rules from the start, for reference.
    reference = run(RunRequest([new_file], replay=str(capture), stdout=False))
    assert reference.alerts_by_rule["new"] > 0
    swapped = run(
        RunRequest([], source="syscall", replay=str(capture), stdout=False),
        switch=SwapAfterReads(old, new, reads=3),
    )
    assert swapped.alerts_by_rule == reference.alerts_by_rule
