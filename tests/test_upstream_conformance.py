"""Conformance with upstream data in ../shared: every upstream rules file loads with zero errors
(with item counts taken independently from the files), and the `validate_rules_file` cases of
Falco 0.34.1's regression suite give the expected errors, warnings and Ok results."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.fields import catalog

STABLE = "falco_rules.yaml"
INCUBATING = "falco-incubating_rules.yaml"
SANDBOX = "falco-sandbox_rules.yaml"
PLUGIN_FILES = {
    "k8s_audit": ["k8s_audit_rules.yaml"],
    "aws_cloudtrail": ["aws_cloudtrail_rules.yaml"],
    "github": ["github.yaml"],
    "okta": ["okta_rules.yaml"],
    "gcp_auditlog": ["gcp_auditlog_rules.yaml"],
    "k8s_audit+gke": ["k8s_audit_rules.yaml", "k8saudit-gke/k8s_audit_rules_gke.yaml"],
}

# Messages Falco changed after 0.34.1 (current wording, falco rule_loading_messages.h and
# rule_loader_reader.cpp); the 0.34.1 expectations are mapped to what Falco says today.
CURRENT_FALCO_MESSAGES = {
    "Macro has 'append' key but no macro by that name already exists": "Macro uses 'append' or "
    "'override.condition: append' but no macro by that name already exists",
    "List has 'append' key but no list by that name already exists": "List uses 'append' or "
    "'override.items: append' but no list by that name already exists",
    "Rule has 'append' key but no rule by that name already exists": "Rule uses 'append' or "
    "'override.<key>: append' but no rule by that name already exists",
    "Can't decode YAML scalar value": "Unable to parse engine version 'not-a-number' as a semver "
    'string. Expected "x.y.z" semver format.',
    # Integer engine versions are now reported as the semver they stand for.
    "Rules require engine version 9999999, but engine version is": "Rules require engine "
    "version 0.9999999.0, but engine version is",
}
# Warning codes Falco renamed after 0.34.1.
CURRENT_FALCO_CODES = {"LOAD_UNKNOWN_FIELD": "LOAD_UNKNOWN_FILTER"}
# The cases that expect "Unknown source aws_cloudtrail": errors with the source present (Falco with
# the cloudtrail plugin loaded checks exception fields against it; `aws.user` is not one).
WITH_CLOUDTRAIL_SOURCE = {
    "no_plugins_unknown_source": [],
    "no_plugins_unknown_source_rule_exception": ["'aws.user' is not a supported filter field"],
}
# Cases whose failure is outside the loader, with the reason.
KNOWN_GAPS: dict[str, str] = {}
# Parser-generated texts: yaml-cpp's wording cannot be reproduced by another YAML parser; the code
# and the position are compared instead.
YAML_CPP_MESSAGES = {"yaml-cpp: error at line 1, column 11: illegal map value": (0, 10)}


def _need_sources(*sources: str) -> None:
    for source in sources:
        if catalog(source) is None:
            pytest.skip(f"the {source} field catalog is not registered in this tree yet")


def _count_items(paths: list[Path]) -> dict[str, set[str]]:
    """Distinct list/macro/rule names defined in files (independent of the loader)."""
    names: dict[str, set[str]] = {"list": set(), "macro": set(), "rule": set()}
    for path in paths:
        for item in yaml.safe_load(path.read_text()) or []:
            for kind in names:
                if kind in item and "override" not in item and not item.get("append"):
                    names[kind].add(item[kind])
    return names


def _load(paths: list[Path]) -> Any:
    from engine.loader import load_rules_files

    return load_rules_files(paths, use_cache=False)


def _errors(loaded: Any) -> list[str]:
    return [f"{r.name}: {e.code.name}: {e.message}" for r in loaded.results for e in r.errors]


def test_stable_incubating_sandbox_load_together(shared_dir: Path) -> None:
    _need_sources("syscall")
    from engine.loader import load_rules_files

    rules_dir = shared_dir / "upstream-rules"
    paths = [rules_dir / STABLE, rules_dir / INCUBATING, rules_dir / SANDBOX]
    loaded = load_rules_files(paths, use_cache=False, check_schema=True)
    assert _errors(loaded) == []
    assert [r.schema_statuses for r in loaded.results] == [["ok"]] * 3
    counted = _count_items(paths)
    assert len(loaded.rules) == len(counted["rule"]) == 93
    assert set(loaded.macros) == counted["macro"]
    assert set(loaded.lists) == counted["list"]
    assert sum(r.enabled for r in loaded.rules) == 81
    # Evaluation order is the first-definition order across the three files.
    assert [r.name for r in loaded.rules][:3] == [
        item["rule"] for item in yaml.safe_load((rules_dir / STABLE).read_text()) if "rule" in item
    ][:3]


@pytest.mark.parametrize("name", sorted(PLUGIN_FILES))
def test_plugin_rules_files_load(shared_dir: Path, name: str) -> None:
    _need_sources(name.split("+")[0])
    paths = [shared_dir / "upstream-rules" / f for f in PLUGIN_FILES[name]]
    loaded = _load(paths)
    assert _errors(loaded) == []
    counted = _count_items(paths)
    assert {r.name for r in loaded.rules} == counted["rule"]
    assert set(loaded.macros) == counted["macro"]
    assert set(loaded.lists) == counted["list"]
    assert all(r.source == name.split("+")[0] for r in loaded.rules)


def test_gke_overlay_appends_to_k8saudit(shared_dir: Path) -> None:
    _need_sources("k8s_audit")
    rules_dir = shared_dir / "upstream-rules"
    alone = _load([rules_dir / "k8s_audit_rules.yaml"])
    overlaid = _load(
        [rules_dir / "k8s_audit_rules.yaml", rules_dir / "k8saudit-gke/k8s_audit_rules_gke.yaml"]
    )
    robot = "google-container-engine-robot"
    assert robot not in alone.rule("Disallowed K8s User").info["exception_names"]
    assert robot in overlaid.rule("Disallowed K8s User").info["exception_names"]
    images = "k8s_audit_privileged_images"
    assert "gke.gcr.io/netd" not in alone.lists[images].items
    assert "gke.gcr.io/netd" in overlaid.lists[images].items
    assert overlaid.lists[images].items[: len(alone.lists[images].items)] == (
        alone.lists[images].items
    )


# --- Falco 0.34.1 regression suite (validate_rules_file cases)


class _MuxLoader(yaml.SafeLoader):
    """The suite's files use avocado's `!mux` tag on mappings."""


_MuxLoader.add_constructor("!mux", lambda loader, node: loader.construct_mapping(node))


def _validation_cases() -> list[tuple[str, dict[str, Any]]]:
    specs = Path(__file__).resolve().parents[2] / "shared/upstream-events/falco-0.34.1-test-specs"
    if not specs.is_dir():
        return []
    cases = []
    for suite in ("falco_tests.yaml", "falco_tests_exceptions.yaml", "falco_tests_plugins.yaml"):
        document = yaml.load((specs / suite).read_text(), Loader=_MuxLoader)
        for name, case in document["trace_files"].items():
            if "validate_rules_file" in case:
                cases.append((f"{suite}:{name}", case))
    return cases


VALIDATION_CASES = _validation_cases()


def case_id(case: dict[str, Any]) -> str:
    return next(name for name, c in VALIDATION_CASES if c is case).split(":", 1)[1]


def _matches(found: dict[str, Any], expected: dict[str, Any]) -> bool:
    """falco 0.34.1 test/falco_test.py: same code, message (equal or contained), and one of the
    context locations with the expected item type and name."""
    if found["code"] != CURRENT_FALCO_CODES.get(expected["code"], expected["code"]):
        return False
    if "message" in expected:
        wanted = CURRENT_FALCO_MESSAGES.get(expected["message"], expected["message"])
        if wanted in YAML_CPP_MESSAGES:
            line, column = YAML_CPP_MESSAGES[wanted]
            last = found["context"]["locations"][-1]["position"]
            if (last["line"], last["column"]) != (line, column):
                return False
        elif found["message"] != wanted:
            return False
    elif (
        CURRENT_FALCO_MESSAGES.get(expected["message_contains"], expected["message_contains"])
        not in found["message"]
    ):
        return False
    return any(
        loc["item_type"] == expected["item_type"] and loc["item_name"] == expected["item_name"]
        for loc in found["context"]["locations"]
    )


@pytest.mark.skipif(not VALIDATION_CASES, reason="../shared/upstream-events is absent")
@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, marks=pytest.mark.xfail(reason=KNOWN_GAPS[n], strict=False))
        if n in KNOWN_GAPS
        else c
        for n, c in VALIDATION_CASES
    ],
    ids=[n for n, _ in VALIDATION_CASES],
)
def test_falco_0_34_1_validation_case(shared_dir: Path, case: dict[str, Any]) -> None:
    _need_sources("syscall")
    from engine.loader import Validation

    specs = shared_dir / "upstream-events/falco-0.34.1-test-specs"
    files = case["validate_rules_file"]
    files = [files] if isinstance(files, str) else files
    loaded = _load([specs / f for f in files])
    expects_unknown_source = any(
        w.get("code") == "LOAD_UNKNOWN_SOURCE" for w in case.get("validate_warnings", [])
    )
    if expects_unknown_source and catalog("aws_cloudtrail") is not None:
        # falconet has a built-in CloudTrail source, so Falco's "no plugin loaded" warning cannot
        # happen: the outcome is Falco's with the cloudtrail plugin loaded.
        errors = [e.message for r in loaded.results for e in r.errors]
        assert errors == WITH_CLOUDTRAIL_SOURCE[case_id(case)]
        return
    results = Validation(loaded, []).as_json()["falco_load_results"]
    for kind, key in (("validate_errors", "errors"), ("validate_warnings", "warnings")):
        for expected in case.get(kind, []):
            found = [m for r in results for m in r[key]]
            assert any(_matches(m, expected) for m in found), (expected, found)
    for ok_file in case.get("validate_ok", []):
        assert any(r["successful"] and os.path.basename(r["name"]) == ok_file for r in results), (
            ok_file
        )
    expected_status = case.get("exit_status", 0)
    assert all(r["successful"] for r in results) is (expected_status == 0)
