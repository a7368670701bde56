"""Falco's own loader unit tests (test_rule_loader.cpp), transcribed as data in
tests/data/falco_rule_loader_cases.yaml and run against the real loader and compiler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.fields import catalog

CASES = yaml.safe_load(
    (Path(__file__).parent / "data" / "falco_rule_loader_cases.yaml").read_text()
)


def _need_sources(*sources: str) -> None:
    for source in sources:
        if catalog(source) is None:
            pytest.skip(f"the {source} field catalog is not registered in this tree yet")


def _messages(result: Any, kind: str) -> list[str]:
    return [m.message for m in getattr(result, kind)]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_falco_loader_case(case: dict[str, Any]) -> None:
    _need_sources("syscall", *(["k8s_audit"] if "k8s_audit" in case["rules"] else []))
    from engine.loader import load_contents
    from engine.rule_describe import describe
    from engine.ruleset import build_rulesets

    loaded = load_contents([("rules.yaml", case["rules"])], use_cache=False)
    (result,) = loaded.results
    errors, warnings = _messages(result, "errors"), _messages(result, "warnings")
    assert result.successful is case["ok"], (errors, warnings)
    for wanted in case.get("errors", []):
        assert any(wanted in e for e in errors), (wanted, errors)
    for wanted in case.get("warnings", []):
        assert any(wanted in w for w in warnings), (wanted, warnings)
    for unwanted in case.get("not_warnings", []):
        assert not any(unwanted in w for w in warnings), (unwanted, warnings)
    if case.get("no_warnings"):
        assert warnings == []
    if "error_snippet_contains" in case:
        snippet = result.errors[0].context.snippet(loaded.contents)
        assert case["error_snippet_contains"] in snippet
    if "deprecated_snippet_includes" in case:
        deprecated = [w for w in result.warnings if w.code.name == "LOAD_DEPRECATED_ITEM"]
        snippet = deprecated[0].context.snippet(loaded.contents)
        assert case["deprecated_snippet_includes"] in snippet
        assert case["deprecated_snippet_excludes"] not in snippet
        assert deprecated[0].deprecated_field == "evt.dir"
    if not case["ok"]:
        return
    for name, compiled in case.get("compiled", {}).items():
        details = describe(loaded, name)["rules"][0]["details"]
        assert details["condition_compiled"] == compiled
    for name, info in case.get("info", {}).items():
        described = describe(loaded, name)["rules"][0]["info"]
        assert {k: described[k] for k in info} == info
    if "enabled" in case:
        rulesets = build_rulesets(loaded.rules)
        enabled = {r.name for rs in rulesets.by_source.values() for r in rs.rules}
        assert {name: name in enabled for name in case["enabled"]} == case["enabled"]
