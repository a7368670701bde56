"""Rulesets: event-type indexing, definition order, first/all matching, selection by name
wildcard and tag (falco.yaml `rules:`), minimum priority, and the one-assignment swap."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from engine.errors import EngineError
from engine.ruleset import (
    CompiledRule,
    Ruleset,
    RulesetSwitch,
    build_rulesets,
    parse_selection,
    select_enabled,
)


def rule(
    name: str,
    index: int,
    types: frozenset[str] | None,
    *,
    matches: Any = None,
    priority: str = "Warning",
    tags: tuple[str, ...] = (),
    enabled: bool = True,
    source: str = "syscall",
) -> CompiledRule:
    return CompiledRule(
        name=name,
        source=source,
        priority=priority,
        tags=frozenset(tags),
        enabled=enabled,
        index=index,
        matches=matches or (lambda event: True),
        event_types=types,
    )


def event_type(event: dict[str, str]) -> str | None:
    return event.get("type")


def test_rules_are_evaluated_only_for_their_event_types_in_definition_order() -> None:
    seen: list[str] = []

    def tracking(name: str) -> Any:
        return lambda event: seen.append(name) or True

    rules = [
        rule("late_open", 5, frozenset({"open"}), matches=tracking("late_open")),
        rule("any", 3, None, matches=tracking("any")),
        rule("early_open", 1, frozenset({"open", "openat"}), matches=tracking("early_open")),
        rule("exec", 2, frozenset({"execve"}), matches=tracking("exec")),
    ]
    ruleset = Ruleset("syscall", rules, matching="all", event_type_of=event_type)
    assert [r.name for r in ruleset.evaluate({"type": "open"})] == [
        "early_open",
        "any",
        "late_open",
    ]
    assert seen == ["early_open", "any", "late_open"]
    seen.clear()
    # A type no rule names still runs the rules without a type constraint.
    assert [r.name for r in ruleset.evaluate({"type": "close"})] == ["any"]
    assert seen == ["any"]


def test_first_matching_stops_at_first_match() -> None:
    rules = [
        rule("a", 1, frozenset({"open"}), matches=lambda e: False),
        rule("b", 2, frozenset({"open"})),
        rule("c", 3, frozenset({"open"})),
    ]
    first = Ruleset("syscall", rules, matching="first", event_type_of=event_type)
    every = Ruleset("syscall", rules, matching="all", event_type_of=event_type)
    assert [r.name for r in first.evaluate({"type": "open"})] == ["b"]
    assert [r.name for r in every.evaluate({"type": "open"})] == ["b", "c"]


def test_plugin_sources_are_not_indexed_by_event_type() -> None:
    rules = [rule("k", 1, None, source="k8s_audit"), rule("k2", 2, None, source="k8s_audit")]
    ruleset = Ruleset("k8s_audit", rules, matching="all", event_type_of=event_type)
    assert [r.name for r in ruleset.evaluate({"type": "whatever"})] == ["k", "k2"]


def test_event_types_needed_by_enabled_rules() -> None:
    typed = [rule("a", 1, frozenset({"open"})), rule("b", 2, frozenset({"execve", "open"}))]
    assert Ruleset("syscall", typed).event_types() == {"open", "execve"}
    assert Ruleset("syscall", [*typed, rule("c", 3, None)]).event_types() is None


def test_selection_by_wildcard_and_tag_in_order() -> None:
    rules = [
        rule("Read sensitive file", 1, None, tags=("filesystem", "mitre_credential_access")),
        rule("Write below etc", 2, None, tags=("filesystem",)),
        rule("Run shell untrusted", 3, None, tags=("shell",)),
        rule("Sandboxed", 4, None, enabled=False, tags=("maturity_sandbox",)),
    ]
    steps = parse_selection(
        [
            {"disable": {"rule": "*"}},
            {"enable": {"tag": "filesystem"}},
            {"disable": {"rule": "Write*"}},
            {"enable": {"rule": "Sandbox?d"}},  # only `*` is a wildcard: no match
        ]
    )
    assert [r.name for r in select_enabled(rules, steps)] == ["Read sensitive file"]
    assert [
        r.name for r in select_enabled(rules, parse_selection([{"enable": {"rule": "Sand*"}}]))
    ] == [
        "Read sensitive file",
        "Write below etc",
        "Run shell untrusted",
        "Sandboxed",
    ]


def test_minimum_priority_excludes_less_severe_rules() -> None:
    rules = [
        rule("crit", 1, None, priority="Critical"),
        rule("warn", 2, None, priority="Warning"),
        rule("info", 3, None, priority="Informational"),
    ]
    assert [r.name for r in select_enabled(rules, min_priority="warning")] == ["crit", "warn"]
    assert [r.name for r in select_enabled(rules, min_priority="INFO")] == ["crit", "warn", "info"]
    with pytest.raises(EngineError, match="unknown priority"):
        select_enabled(rules, min_priority="loud")


@pytest.mark.parametrize(
    "entries",
    [
        [{"enable": {"rule": "x"}, "disable": {"rule": "y"}}],
        [{"toggle": {"rule": "x"}}],
        [{"enable": "x"}],
    ],
)
def test_bad_selection_entries_are_errors(entries: list[dict[str, Any]]) -> None:
    with pytest.raises(EngineError):
        parse_selection(entries)


def test_build_rulesets_groups_by_source_and_evaluates_by_source() -> None:
    rules = [
        rule("sys", 1, frozenset({"open"})),
        rule("audit", 2, None, source="k8s_audit"),
        rule("off", 3, frozenset({"open"}), enabled=False),
    ]
    rulesets = build_rulesets(rules, event_type_of={"syscall": event_type})
    assert [r.name for r in rulesets.evaluate({"type": "open"}, "syscall")] == ["sys"]
    assert [r.name for r in rulesets.evaluate({}, "k8s_audit")] == ["audit"]
    assert rulesets.evaluate({}, "okta") == []
    assert rulesets.event_types("syscall") == {"open"}


def test_swap_is_atomic_for_concurrent_evaluation() -> None:
    """Evaluations running during swaps always see one complete ruleset: old or new."""
    old = build_rulesets([rule("old1", 1, None), rule("old2", 2, None)])
    new = build_rulesets([rule("new1", 1, None), rule("new2", 2, None)])
    switch = RulesetSwitch(old)
    mixed: list[list[str]] = []
    stop = threading.Event()

    def evaluate() -> None:
        while not stop.is_set():
            names = [r.name[:3] for r in switch.current.by_source["syscall"].rules]
            if len(set(names)) != 1:
                mixed.append(names)

    worker = threading.Thread(target=evaluate)
    worker.start()
    for _ in range(2000):
        switch.swap(new)
        switch.swap(old)
    stop.set()
    worker.join()
    assert mixed == []
    assert switch.swap(new) is old
    assert [r.name for r in switch.evaluate({}, "syscall")] == ["new1"]
