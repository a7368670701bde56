"""A ruleset evaluates each event type's rules as one generated chain (compile_chain): fields
shared by the rules are extracted once per event, and the matches (which rules, in which order,
first or all) are exactly those of evaluating each rule's own condition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.condition.compiler import compile_chain
from engine.condition.parser import parse
from engine.fields import FieldCatalog, FieldSpec
from engine.ruleset import SelectionStep

UPSTREAM_FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")
# Rules that match often on the upstream captures, so that first/all ordering is exercised.
OVERLAPPING = """
- rule: any open
  desc: every open
  condition: evt.type in (open, openat, openat2) and fd.name exists
  output: "%fd.name"
  priority: INFO
- rule: open by a named process
  desc: opens by processes with a name
  condition: evt.type in (open, openat, openat2) and proc.name exists and not fd.name = /nothing
  output: "%proc.name"
  priority: INFO
- rule: any event of a process
  desc: no evt.type constraint
  condition: proc.name exists and evt.dir = <
  output: "%evt.type"
  priority: DEBUG
  warn_evttypes: false
"""


def counting_catalog(calls: list[str]) -> FieldCatalog:
    def name_of(event: dict[str, Any]) -> Any:
        calls.append("name")
        return event.get("name")

    def size_of(event: dict[str, Any]) -> Any:
        calls.append("size")
        return event.get("size")

    catalog = FieldCatalog("counting")
    catalog.add_simple(FieldSpec("p.name", "string"), name_of)
    catalog.add_simple(FieldSpec("p.size", "uint"), size_of)
    return catalog


def test_a_chain_extracts_fields_shared_by_its_conditions_once() -> None:
    calls: list[str] = []
    conditions = [
        parse("p.name = a and p.size > 10"),
        parse("p.name startswith a"),
        parse("p.size exists and not p.name = b"),
    ]
    every = compile_chain(conditions, counting_catalog(calls), first=False)
    assert list(every({"name": "ab", "size": 20})) == [1, 2]
    assert sorted(calls) == ["name", "size"]
    calls.clear()
    assert list(every({"name": "a", "size": 20})) == [0, 1, 2]
    assert sorted(calls) == ["name", "size"]
    first = compile_chain(conditions, counting_catalog(calls), first=True)
    assert list(first({"name": "a", "size": 20})) == [0]
    assert list(first({"name": "b"})) == []


def _replayed_events(capture: Path) -> Any:
    from engine.sources.syscall.replay import open_replay

    with open_replay(capture) as replay:
        yield from replay.events()


@pytest.mark.parametrize("matching", ["first", "all"])
def test_chained_rulesets_match_exactly_as_each_rule_alone(
    shared_dir: Path, tmp_path: Path, matching: Any
) -> None:
    from engine.loader import load_rules_files, rulesets_for

    extra = tmp_path / "overlapping.yaml"
    extra.write_text(OVERLAPPING)
    files = [shared_dir / "upstream-rules" / name for name in UPSTREAM_FILES] + [extra]
    loaded = load_rules_files(files)
    ruleset = rulesets_for(loaded, [SelectionStep(True, rule="*")], matching=matching).by_source[
        "syscall"
    ]
    matched = 0
    for capture in sorted((shared_dir / "upstream-captures").glob("*.scap")):
        for event in _replayed_events(capture):
            expected = [rule for rule in ruleset.candidates(event) if rule.matches(event)]
            if matching == "first":
                expected = expected[:1]
            assert ruleset.evaluate(event) == expected, (capture.name, event)
            matched += len(expected)
    assert matched > 0


@pytest.mark.parametrize(
    ("condition", "event_type", "expected"),
    [
        ("evt.type in (open, openat) and proc.name = cat", "openat", "proc.name = cat"),
        ("evt.type in (open, openat) and proc.name = cat", "execve", False),
        ("evt.type != execve", "openat", True),
        ("not evt.type = execve and fd.name exists", "execve", False),
        (
            "(evt.type = rename and fd.name = a) or (evt.type = openat and fd.name = b)",
            "openat",
            "fd.name = b",
        ),
        ("(evt.type = rename and fd.name = a) or proc.name = x", "openat", "proc.name = x"),
        ("evt.type = openat or proc.name = x", "openat", True),
        ("syscall.type = openat and proc.name = x", "openat", None),  # not evt.type: kept
        ("evt.type startswith open", "openat", None),  # not an equality: kept
    ],
)
def test_conditions_specialise_to_what_they_are_on_one_event_type(
    condition: str, event_type: str, expected: Any
) -> None:
    from engine.condition.evttypes import specialize_for_event_type

    node = parse(condition)
    found = specialize_for_event_type(node, event_type)
    if expected is None:
        assert found == node
    elif isinstance(expected, bool):
        assert found is expected
    else:
        assert found == parse(expected)
