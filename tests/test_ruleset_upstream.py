"""Loader + rulesets end to end on upstream data: the upstream k8s audit rules evaluated on the
Kubernetes audit events of Falco's regression suite, through the real k8s_audit source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.fields import catalog


def _detections(shared_dir: Path, event_file: str, matching: str = "all") -> list[str]:
    if catalog("k8s_audit") is None:
        pytest.skip("the k8s_audit field catalog is not registered in this tree yet")
    from engine.loader import load_valid_rules, rulesets_for
    from engine.sources.formats import EventFactory

    loaded = load_valid_rules([shared_dir / "upstream-rules" / "k8s_audit_rules.yaml"])
    rulesets = rulesets_for(loaded, matching=matching)  # type: ignore[arg-type]
    document = json.loads((shared_dir / "upstream-events" / "k8s_audit" / event_file).read_text())
    factory = EventFactory("k8s_audit")
    return [
        rule.name
        for event in factory.from_document(document)
        for rule in rulesets.evaluate(event, "k8s_audit")
    ]


def test_privileged_pod_is_detected(shared_dir: Path) -> None:
    assert "Create Privileged Pod" in _detections(shared_dir, "create_nginx_pod_privileged.json")


def test_unprivileged_pod_is_not(shared_dir: Path) -> None:
    assert "Create Privileged Pod" not in _detections(
        shared_dir, "create_nginx_pod_unprivileged.json"
    )


def test_rule_matching_first_reports_at_most_one_rule_per_event(shared_dir: Path) -> None:
    every = _detections(shared_dir, "create_nginx_pod_privileged.json", "all")
    first = _detections(shared_dir, "create_nginx_pod_privileged.json", "first")
    assert len(first) <= 1
    assert first == every[:1]
