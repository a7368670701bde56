"""Selection: Falco's enable-by-tag meaning, control prefixes, maturity, priority; files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.compliance.rulesfile import read_rules
from feeds.compliance.selection import read_selection, select_rules
from tests.test_compliance_overlay import (
    FIXTURE_RULES,
    TAG_PREFIX,
    effective_tags,
    tag_matches,
    upstream_files,
)

FRAMEWORKS = [*TAG_PREFIX, "mitre-attack"]


@pytest.fixture(scope="module")
def overlay_text(shared_dir: Path) -> str:
    from feeds.compliance.operations import generate_overlay

    return generate_overlay(upstream_files(shared_dir)).text


@pytest.fixture
def fixture_rules(tmp_path: Path) -> Path:
    path = tmp_path / "fixture_rules.yaml"
    path.write_text(FIXTURE_RULES)
    return path


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        # T1070 implies TA0005, whose row maps to PCI 10.2.1.6: selected through the tactic.
        ({"framework_spec": "pci-dss:10.2"}, {"C sandbox log removal"}),
        # `10` is a parent of 10.20 and 10.4.1.1 (D's k8s_audit source row) too.
        (
            {"framework_spec": "pci-dss:10"},
            {"C sandbox log removal", "D audit rule", "E pre-tagged"},
        ),
        ({"framework_spec": "pci-dss:10.3"}, {"C sandbox log removal"}),
        ({"framework_spec": "nist:IA-5"}, {"B incubating credentials"}),
        ({"framework_spec": ["nist:IA-5", "dora:Art12"]}, {"B incubating credentials"}),
        ({"tags": ["host"]}, {"A stable critical shell", "C sandbox log removal"}),
        ({"maturity": "stable"}, {"A stable critical shell", "D audit rule", "E pre-tagged"}),
        (
            {"maturity": "incubating"},
            {"A stable critical shell", "B incubating credentials", "D audit rule", "E pre-tagged"},
        ),
        ({"min_priority": "warning"}, {"A stable critical shell", "B incubating credentials"}),
        ({"framework_spec": "mitre:TA0002", "tags": ["host"]}, {"A stable critical shell"}),
        ({"framework_spec": "mitre:TA0002", "tags": ["container"]}, set()),
        ({"framework_spec": "soc2", "min_priority": "critical"}, {"A stable critical shell"}),
    ],
)
def test_selection_criteria_on_a_fixture(
    fixture_rules: Path, criteria: dict[str, object], expected: set[str]
) -> None:
    rules = read_rules([fixture_rules])
    assert select_rules(rules, **criteria) == expected


def test_cli_select_writes_a_falco_rules_config_fragment(
    fixture_rules: Path, run_cli, tmp_path: Path
) -> None:
    target = tmp_path / "out" / "selection.yaml"
    result = run_cli(
        "compliance", "select", str(fixture_rules), "--compliance", "pci-dss:10", "--maturity",
        "incubating", "--write", str(target), "-o", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    selected = json.loads(result.stdout)["rules"]
    assert selected == ["D audit rule", "E pre-tagged"]
    config = yaml.safe_load(target.read_text())
    assert config["rules"][0] == {"disable": {"rule": "*"}}
    assert config["rules"][1:] == [{"enable": {"rule": name}} for name in selected]
    assert read_selection(target) == selected
    assert "pci-dss:10" in target.read_text()  # criteria recorded in the header


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--compliance", "pci-dds"], 2, "unknown compliance framework"),
        (["--compliance", "pci-dss:99"], 2, "no PCI DSS control"),
        (["--min-priority", "loud"], 2, "unknown priority"),
        (["--maturity", "experimental"], 2, "unknown maturity"),
    ],
)
def test_bad_criteria_fail_with_one_line_and_a_hint(
    fixture_rules: Path, run_cli, args: list[str], status: int, message: str
) -> None:
    result = run_cli("compliance", "select", str(fixture_rules), *args)
    assert result.returncode == status
    assert result.stderr.startswith(f"error: {message}")
    assert "hint:" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (None, 3, "does not exist"),
        ("- rule: [unclosed\n", 2, "YAML parse error"),
        ("rule: x\n", 2, "Rules content is not yaml array of objects"),
        (
            "- rule: x\n  desc: d\n  condition: evt.type=open\n  output: o\n  priority: INFO\n"
            "  tags: notalist\n",
            2,
            "Value is not a sequence",
        ),
    ],
)
def test_bad_rules_files_fail_cleanly(
    run_cli, tmp_path: Path, content: str | None, status: int, message: str
) -> None:
    path = tmp_path / "rules.yaml"
    if content is not None:
        path.write_text(content)
    result = run_cli("compliance", "report", str(path), "--framework", "pci-dss")
    assert result.returncode == status, result.stderr
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr and "hint:" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("with_prefix", [False, True])
def test_selection_equals_falco_enable_by_tag_on_the_overlay(
    shared_dir: Path, framework: str, with_prefix: bool, overlay_text: str
) -> None:
    files = upstream_files(shared_dir)
    prefix = {
        "pci-dss": "10.2", "soc2": "CC6", "hipaa": "164.312", "nist-800-53": "AU",
        "fedramp": "High_AC", "nis2": "21.2.b", "dora": "Art9", "mitre-attack": "TA0004",
    }[framework] if with_prefix else None  # fmt: skip
    spec = framework + (f":{prefix}" if prefix else "")
    selected = select_rules(read_rules(files), spec)
    tags = effective_tags(files, overlay_text)
    falco_would_enable = {
        name
        for name, rule_tags in tags.items()
        if any(tag_matches(t, framework, prefix) for t in rule_tags)
    }
    assert selected, spec
    assert selected == falco_would_enable


def test_frameworks_covered_lists_only_frameworks_some_rule_maps_to(tmp_path: Path) -> None:
    from feeds.compliance.operations import frameworks_covered

    only_pci = tmp_path / "pci.yaml"
    only_pci.write_text(
        "- rule: P\n  desc: p\n  condition: evt.type = open\n  output: p\n  priority: INFO\n"
        "  tags: [PCI_DSS_10.2.1, host]\n"
    )
    assert frameworks_covered([only_pci]) == ["pci-dss"]
    untagged = tmp_path / "none.yaml"
    untagged.write_text(only_pci.read_text().replace("PCI_DSS_10.2.1, ", ""))
    assert frameworks_covered([untagged]) == []


def test_selection_files_for_install_are_written_next_to_the_rules(
    fixture_rules: Path, tmp_path: Path
) -> None:
    from feeds.compliance.operations import write_selection_files

    dest = tmp_path / "rules.d"
    written = write_selection_files(dest, [fixture_rules], ["nist:IA-5"], min_priority="warning")
    assert written.rules == ["B incubating credentials"]
    assert written.criteria["compliance"] == ["nist-800-53:IA-5"]
    assert read_selection(written.selection) == written.rules
    overlay = yaml.safe_load(written.overlay.read_text())
    # E only carries PCI_DSS_10.20 already: it gains no tag, so it has no overlay entry.
    gaining = {r.name for r in read_rules([fixture_rules])} - {"E pre-tagged"}
    assert {e["rule"] for e in overlay} == gaining
    written_files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert written_files == sorted(  # no temporary files left behind
        [str(written.overlay.relative_to(dest)), str(written.selection.relative_to(dest))]
    )


def test_invalid_criteria_write_nothing(fixture_rules: Path, tmp_path: Path) -> None:
    from feeds.compliance.errors import SelectionError
    from feeds.compliance.operations import write_selection_files

    with pytest.raises(SelectionError):
        write_selection_files(tmp_path / "rules.d", [fixture_rules], ["pci-dss:99"])
    assert not (tmp_path / "rules.d").exists()


TAG_POOL = [
    "mitre_execution", "T1059.004", "TA0003", "MITRE_TA0006_credential_access",
    "T1562-impair-defenses",
    "abuse-elevation-control-mechanism", "PCI_DSS_10.2.1.6", "NIST_800-53_AU-9", "SOC2_CC8.1",
    "HIPAA_164.312(b)", "NIS2_21.2.d", "DORA_Art12", "FedRAMP_High_AU-10", "aws_iam", "okta",
    "cis", "container", "maturity_stable", "maturity_sandbox", "PCI_DSS_foo",
]  # fmt: skip
SPECS = [
    "pci-dss:10.2", "pci-dss:8", "nist:AU-9", "nist:AC", "soc2:CC8", "hipaa:164.312", "nis2:21.2.d",
    "dora:Art9", "fedramp:High_AU", "fedramp:Low", "mitre:TA0004", "mitre:T1059",
]  # fmt: skip


@given(
    rules=st.lists(
        st.tuples(
            st.lists(st.sampled_from(TAG_POOL), max_size=5, unique=True),
            st.sampled_from(["syscall", "k8s_audit", "okta", "aws_cloudtrail"]),
        ),
        min_size=1,
        max_size=8,
    ),
    spec=st.sampled_from(SPECS),
)
@settings(max_examples=150, deadline=None)
def test_selection_equals_enable_by_tag_after_overlay_for_any_rules(
    rules: list[tuple[list[str], str]], spec: str
) -> None:
    from feeds.compliance.overlay import overlay_entries
    from feeds.compliance.rulesfile import RuleInfo
    from feeds.compliance.selection import parse_framework_spec

    infos = [
        RuleInfo(f"r{i}", tuple(tags), "Warning", source, True, "mem.yaml")
        for i, (tags, source) in enumerate(rules)
    ]
    effective = {info.name: set(info.tags) for info in infos}
    for entry in overlay_entries(infos):
        effective[entry["rule"]].update(entry["tags"])
    parsed = parse_framework_spec(spec)
    expected = {
        name
        for name, tags in effective.items()
        if any(tag_matches(tag, parsed.framework, parsed.control_prefix) for tag in tags)
    }
    assert select_rules(infos, spec) == expected
