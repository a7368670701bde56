"""Tag grammar: every upstream style and ours normalise to (framework, control); nothing crashes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from feeds.compliance.catalogue import load_catalogue
from feeds.compliance.tags import parse_tag, tag_for

CATALOGUE = load_catalogue()


@pytest.mark.parametrize(
    ("tag", "framework", "control"),
    [
        ("PCI_DSS_11.5.1", "pci-dss", "11.5.1"),
        ("NIST_800-53_AC-2", "nist-800-53", "AC-2"),
        ("NIST_800-53_AC-2(4)", "nist-800-53", "AC-2(4)"),
        ("mitre_execution", "mitre-attack", "TA0002"),
        ("mitre_privilege_escalation", "mitre-attack", "TA0004"),
        ("T1059.004", "mitre-attack", "T1059.004"),
        ("TA0003", "mitre-attack", "TA0003"),
        ("MITRE_TA0002_execution", "mitre-attack", "TA0002"),
        ("MITRE_TA0006_credential_access", "mitre-attack", "TA0006"),
        ("T1562-impair-defenses", "mitre-attack", "T1562"),
        ("TA0005-defense-evasion", "mitre-attack", "TA0005"),
        ("abuse-elevation-control-mechanism", "mitre-attack", "T1548"),
        ("mitre_data_destruction", "mitre-attack", "T1485"),
        ("SOC2_CC7.2", "soc2", "CC7.2"),
        ("HIPAA_164.312(b)", "hipaa", "164.312(b)"),
        ("HIPAA_164.308(a)(1)(ii)(D)", "hipaa", "164.308(a)(1)(ii)(D)"),
        ("NIS2_21.2.b", "nis2", "21.2.b"),
        ("DORA_Art10", "dora", "Art10"),
        ("FedRAMP_Moderate_AU-6", "fedramp", "Moderate_AU-6"),
    ],
)
def test_each_style_normalises_to_framework_and_control(
    tag: str, framework: str, control: str
) -> None:
    parsed = parse_tag(tag, CATALOGUE)
    assert (parsed.kind, parsed.framework, parsed.control) == ("control", framework, control)
    assert parsed.known is True


@pytest.mark.parametrize(
    "tag",
    ["PCI_DSS_foo", "NIST_800-53_XYZ", "FedRAMP_AU-6", "SOC2_7.2", "mitre_teleportation", "T12"],
)
def test_framework_lookalikes_are_reported_with_a_reason(tag: str) -> None:
    parsed = parse_tag(tag, CATALOGUE)
    assert parsed.kind == "unrecognised"
    assert parsed.reason


def test_a_well_formed_control_absent_from_the_catalogue_is_flagged_not_dropped() -> None:
    # Upstream's PCI_DSS_10.2.5 is a PCI DSS 3.2.1 number; v4.0 has no 10.2.5.
    parsed = parse_tag("PCI_DSS_10.2.5", CATALOGUE)
    assert (parsed.kind, parsed.control, parsed.known) == ("control", "10.2.5", False)
    assert "4.0" in (parsed.reason or "")


@pytest.mark.parametrize("tag", ["container", "host", "k8s", "aws_s3", "Pub/Sub", "GCP"])
def test_scope_tags_are_plain(tag: str) -> None:
    assert parse_tag(tag, CATALOGUE).kind == "plain"


def test_maturity_tags() -> None:
    assert parse_tag("maturity_incubating", CATALOGUE).control == "incubating"
    assert parse_tag("maturity_experimental", CATALOGUE).kind == "unrecognised"


@pytest.mark.parametrize(
    ("framework", "control"),
    [
        ("pci-dss", "10.2.1"),
        ("nist-800-53", "AU-9"),
        ("hipaa", "164.312(b)"),
        ("fedramp", "High_AU-10"),
        ("mitre-attack", "T1611"),
        ("nis2", "21.2.j"),
        ("dora", "Art9"),
        ("soc2", "CC6.1"),
    ],
)
def test_canonical_tags_parse_back_to_their_control(framework: str, control: str) -> None:
    parsed = parse_tag(tag_for(framework, control), CATALOGUE)
    assert (parsed.framework, parsed.control, parsed.known) == (framework, control, True)


@given(st.text(max_size=40))
def test_parsing_never_raises(tag: str) -> None:
    assert parse_tag(tag, CATALOGUE).kind in {"control", "maturity", "plain", "unrecognised"}


def _upstream_tags(shared_dir: Path) -> set[str]:
    tags: set[str] = set()
    for path in sorted((shared_dir / "upstream-rules").rglob("*.yaml")):
        for item in yaml.safe_load(path.read_text()) or []:
            if isinstance(item, dict) and "rule" in item:
                tags.update(str(t) for t in item.get("tags") or [])
    return tags


def test_every_upstream_tag_parses_and_framework_tags_are_never_plain(shared_dir: Path) -> None:
    tags = _upstream_tags(shared_dir)
    assert len(tags) > 100
    framework_looking = re.compile(r"(?i)^(pci|nist|mitre|soc2|hipaa|t\d|ta\d)")
    for tag in tags:
        parsed = parse_tag(tag, CATALOGUE)
        if framework_looking.match(tag):
            assert parsed.kind in {"control", "unrecognised"}, tag
        if parsed.kind == "unrecognised":
            assert parsed.reason, tag
        if parsed.kind == "control" and parsed.framework == "mitre-attack":
            # The id in the tag (any style) is the control, when the tag carries one.
            embedded = re.match(r"(?:MITRE_)?(TA\d{4}|T\d{4}(?:\.\d{3})?)", tag)
            if embedded:
                assert parsed.control == embedded.group(1)


def test_cli_tags_reports_unrecognised_upstream_tags(shared_dir: Path, run_cli) -> None:
    files = sorted(str(p) for p in (shared_dir / "upstream-rules").rglob("*.yaml"))
    result = run_cli("compliance", "tags", *files, "-o", "json")
    assert result.returncode == 0, result.stderr
    rows = {row["tag"]: row for row in json.loads(result.stdout)}
    assert set(rows) == _upstream_tags(shared_dir)
    unrecognised = {t for t, row in rows.items() if row["kind"] == "unrecognised"}
    assert unrecognised == {t for t in rows if parse_tag(t, CATALOGUE).kind == "unrecognised"}
    assert all(rows[t]["reason"] for t in unrecognised)
    # `compliance` (gcp) names no framework: reported, with the number of rules using it.
    assert rows["compliance"]["kind"] == "unrecognised" and rows["compliance"]["rules"] >= 1
