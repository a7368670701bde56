"""Selections load in falconet's engine: the overlay loads cleanly and each framework's selection
file yields compiled rulesets whose rules all carry a matching tag."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from feeds.compliance.operations import generate_overlay
from feeds.compliance.rulesfile import read_rules
from feeds.compliance.selection import build_criteria, select, select_rules, write_selection
from tests.test_compliance_overlay import tag_matches, upstream_files

engine_loader = pytest.importorskip("engine.loader", reason="falconet's rules loader is absent")

SPECS = [
    ("pci-dss", None), ("pci-dss", "10.2"), ("soc2", None), ("soc2", "CC6"),
    ("hipaa", "164.312(b)"), ("nist-800-53", None), ("nist-800-53", "AU-9"), ("fedramp", "High"),
    ("nis2", "21.2.c"), ("dora", "Art9"), ("mitre-attack", None), ("mitre-attack", "TA0006"),
]  # fmt: skip


@pytest.fixture(scope="module")
def loaded(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    files = upstream_files(shared_dir)
    overlay = tmp_path_factory.mktemp("overlay") / "compliance-overlay.yaml"
    overlay.write_text(generate_overlay(files).text)
    result = engine_loader.load_rules_files([*files, str(overlay)], use_cache=False)
    assert result.successful, [r.as_json(result.contents) for r in result.results if r.errors]
    return files, result


@pytest.mark.parametrize(("framework", "prefix"), SPECS)
def test_each_selection_compiles_to_rulesets_of_matching_rules(
    loaded,
    tmp_path: Path,
    framework: str,
    prefix: str | None,  # type: ignore[no-untyped-def]
) -> None:
    from engine.ruleset import parse_selection

    files, result = loaded
    spec = framework + (f":{prefix}" if prefix else "")
    selection = select(read_rules(files), build_criteria(spec))
    target = write_selection(tmp_path / "selection.yaml", selection)
    steps = parse_selection(yaml.safe_load(target.read_text())["rules"])
    rulesets = engine_loader.rulesets_for(result, steps)
    enabled = [rule for ruleset in rulesets.by_source.values() for rule in ruleset.rules]
    assert enabled, spec
    assert {rule.name for rule in enabled} == set(selection.rules)
    for rule in enabled:
        assert any(tag_matches(tag, framework, prefix) for tag in rule.tags), rule.name


def test_select_rules_accepts_the_engines_compiled_rules(loaded) -> None:  # type: ignore[no-untyped-def]
    files, result = loaded
    from_files = select_rules(read_rules(files), "nist:AU", maturity="incubating")
    from_engine = select_rules(result.rules, "nist:AU", maturity="incubating")
    assert from_files and from_engine == from_files
