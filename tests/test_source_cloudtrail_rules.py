"""CloudTrail end to end: the upstream CloudTrail samples through the loader and rulesets, with
Falco 0.34.1's plugin test rules (falco_tests_plugins.yaml detect_create_instance*) and with the
current upstream cloudtrail rules."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from engine.loader import load_rules_files, rulesets_for
from engine.ruleset import SelectionStep
from engine.sources import provided_plugins
from engine.sources.readers import read_events

SPECS = "upstream-events/falco-0.34.1-test-specs/rules/plugins"
SOURCE = "aws_cloudtrail"


def alerts(
    rules: list[Path], trail: Path, enable: tuple[str, ...] = ()
) -> list[tuple[str, str, str]]:
    loaded = load_rules_files(rules, use_cache=False)
    assert [e.message for r in loaded.results for e in r.errors] == []
    if enable:
        rulesets = rulesets_for(loaded, [SelectionStep(enable=True, rule=name) for name in enable])
    else:
        rulesets = rulesets_for(loaded)
    return [
        (rule.name, rule.priority, rule.output.render(event))
        for event in read_events(SOURCE, trail)
        for rule in rulesets.evaluate(event, SOURCE)
    ]


@pytest.mark.parametrize(
    "sample", ["alice_start_instances.json", "alice_start_instances_bigevent.json"]
)
def test_falco_plugin_case_detect_create_instance(shared_dir: Path, sample: str) -> None:
    found = alerts(
        [shared_dir / SPECS / "cloudtrail_create_instances.yaml"],
        shared_dir / "upstream-events/cloudtrail" / sample,
    )
    assert [(name, priority) for name, priority, _ in found] == [
        ("Cloudtrail Create Instance", "Informational")
    ]
    output = found[0][2]
    assert output.startswith(
        "EC2 Instance Created (evtnum=1 info=us-east-2 Alice ec2 StartInstances "
        "Alice via 205.251.233.176 ← StartInstances id="
    )
    assert output.endswith(" user name=Alice)")


def test_incompatible_plugin_version_is_reported(shared_dir: Path) -> None:
    loaded = load_rules_files(
        [shared_dir / SPECS / "cloudtrail_incompat_plugin_version.yaml"], use_cache=False
    )
    assert loaded.unmet_plugin_requirements(provided_plugins()) == [
        "Plugin requirement not satisfied, must load one of: cloudtrail (>= 100000.0.0)"
    ]


def test_upstream_cloudtrail_rules_on_the_samples(shared_dir: Path) -> None:
    rules = [shared_dir / "upstream-rules/aws_cloudtrail_rules.yaml"]
    trails = shared_dir / "upstream-events/cloudtrail"
    loaded = load_rules_files(rules, use_cache=False)
    assert loaded.unmet_plugin_requirements(provided_plugins()) == []
    # StartInstances matches none of the enabled rules (Run Instances is about RunInstances)
    assert alerts(rules, trails) == []
    # the disabled catch-all rule fires once per record when enabled
    found = alerts(rules, trails, enable=("All Cloudtrail Events",))
    assert Counter(name for name, _, _ in found) == {"All Cloudtrail Events": 2}


def test_upstream_cloudtrail_rules_fire_on_matching_records(
    tmp_path: Path, shared_dir: Path
) -> None:
    records = [
        {
            "eventTime": "2024-05-01T10:00:00Z",
            "eventSource": "signin.amazonaws.com",
            "eventName": "ConsoleLogin",
            "awsRegion": "us-east-1",
            "sourceIPAddress": "198.51.100.1",
            "userIdentity": {
                "type": "IAMUser",
                "userName": "carol",
                "arn": "arn:aws:iam::1:user/carol",
            },
            "responseElements": {"ConsoleLogin": "Success"},
            "additionalEventData": {"MFAUsed": "No"},
        },
        {
            "eventTime": "2024-05-01T10:01:00Z",
            "eventSource": "ec2.amazonaws.com",
            "eventName": "RunInstances",
            "awsRegion": "us-east-1",
            "sourceIPAddress": "198.51.100.1",
            "userIdentity": {"type": "IAMUser", "userName": "carol"},
        },
    ]
    trail = tmp_path / "trail.json"
    trail.write_text(json.dumps({"Records": records}))
    found = alerts([shared_dir / "upstream-rules/aws_cloudtrail_rules.yaml"], trail)
    assert [name for name, _, _ in found] == ["Console Login Without MFA", "Run Instances"]
