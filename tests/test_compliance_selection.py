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
STRENGTHS = ["explicit", "technique", "tactic"]
_OVERLAYS: dict[str, str] = {}


def overlay_text(shared_dir: Path, strength: str) -> str:
    """The overlay of every upstream file at `strength` (generated once per strength)."""
    from feeds.compliance.operations import generate_overlay

    if strength not in _OVERLAYS:
        _OVERLAYS[strength] = generate_overlay(upstream_files(shared_dir), strength).text
    return _OVERLAYS[strength]


def falco_rules(shared_dir: Path) -> list[str]:
    """Falco's own rules files: stable, incubating and sandbox (93 rules)."""
    base = shared_dir / "upstream-rules"
    names = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")
    return [str(base / name) for name in names]


@pytest.fixture
def fixture_rules(tmp_path: Path) -> Path:
    path = tmp_path / "fixture_rules.yaml"
    path.write_text(FIXTURE_RULES)
    return path


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        # T1070 implies TA0005, whose row maps to PCI 10.2.1.6: selected through the tactic,
        # so only at strength `tactic`; T1070's own row maps to 10.3.x: selected by default.
        ({"framework_spec": "pci-dss:10.2", "strength": "tactic"}, {"C sandbox log removal"}),
        ({"framework_spec": "pci-dss:10.2"}, set()),
        ({"framework_spec": "pci-dss:10.3"}, {"C sandbox log removal"}),
        # `10` is a parent of 10.20 (E's own tag: explicit, selected at every strength) and
        # 10.4.1.1 (D's k8s_audit source row: generic, only at `tactic`).
        (
            {"framework_spec": "pci-dss:10", "strength": "tactic"},
            {"C sandbox log removal", "D audit rule", "E pre-tagged"},
        ),
        ({"framework_spec": "pci-dss:10"}, {"C sandbox log removal", "E pre-tagged"}),
        ({"framework_spec": "pci-dss:10", "strength": "explicit"}, {"E pre-tagged"}),
        # ATT&CK as a whole needs a technique; a tactic alone is a family.
        (
            {"framework_spec": "mitre"},
            {"A stable critical shell", "B incubating credentials", "C sandbox log removal"},
        ),
        ({"framework_spec": "mitre:TA0006", "strength": "explicit"}, {"B incubating credentials"}),
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
        (
            {"framework_spec": "soc2", "min_priority": "critical", "strength": "tactic"},
            {"A stable critical shell"},
        ),
        # No fixture rule has a technique-level DORA link: only the tactic rows reach DORA.
        ({"framework_spec": "dora"}, set()),
        (
            {"framework_spec": "dora", "strength": "tactic"},
            {
                "A stable critical shell",
                "B incubating credentials",
                "C sandbox log removal",
                "D audit rule",
            },
        ),
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
        "incubating", "--write", str(target), "--strength", "tactic", "-o", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    selected = json.loads(result.stdout)["rules"]
    assert selected == ["D audit rule", "E pre-tagged"]
    assert json.loads(result.stdout)["criteria"]["strength"] == "tactic"
    assert "strength: tactic" in target.read_text()
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
        (["--compliance", "pci", "--strength", "strong"], 2, "unknown strength"),
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


@pytest.mark.parametrize("strength", STRENGTHS)
@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("with_prefix", [False, True])
def test_selection_equals_falco_enable_by_tag_on_the_overlay(
    shared_dir: Path, framework: str, with_prefix: bool, strength: str
) -> None:
    files = upstream_files(shared_dir)
    prefix = {
        "pci-dss": "10.2", "soc2": "CC6", "hipaa": "164.312", "nist-800-53": "AU",
        "fedramp": "High_AC", "nis2": "21.2.c", "dora": "Art9", "mitre-attack": "TA0004",
    }[framework] if with_prefix else None  # fmt: skip
    spec = framework + (f":{prefix}" if prefix else "")
    selected = select_rules(read_rules(files), spec, strength=strength)
    tags = effective_tags(files, overlay_text(shared_dir, strength))
    falco_would_enable = {
        name
        for name, rule_tags in tags.items()
        if any(tag_matches(t, framework, prefix, strength) for t in rule_tags)
    }
    assert selected or strength == "explicit", spec
    assert selected == falco_would_enable


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_default_strength_discriminates_over_falcos_own_rules(
    shared_dir: Path, framework: str
) -> None:
    """Over stable + incubating + sandbox, the default selection of each framework is a
    non-empty strict subset, every selected rule's links trace to evidence, and it equals
    Falco's enable-by-tag over the default overlay of those files."""
    from feeds.compliance.mapping import at_least, framework_strengths, rule_links
    from feeds.compliance.operations import generate_overlay

    files = falco_rules(shared_dir)
    rules = read_rules(files)
    assert len(rules) == 93
    names = {rule.name for rule in rules}
    selected = select_rules(rules, framework)
    assert selected and selected < names, (framework, len(selected))
    tags = effective_tags(files, generate_overlay(files).text)
    assert selected == {
        name
        for name, rule_tags in tags.items()
        if any(tag_matches(t, framework, None) for t in rule_tags)
    }
    for rule in rules:
        if rule.name in selected:
            links = [link for link in rule_links(rule) if link.framework == framework]
            strong = [link for link in links if at_least(link.strength, "technique")]
            assert strong and all(link.evidence for link in strong), rule.name
        else:  # selected at `tactic` only: no link to the framework beats `tactic`
            best = framework_strengths(rule_links(rule)).get(framework)
            assert best == "tactic", (rule.name, best)
    # Weaker strengths select more: explicit <= technique <= tactic = every rule.
    explicit = select_rules(rules, framework, strength="explicit")
    assert explicit <= selected < select_rules(rules, framework, strength="tactic") == names


def test_explicit_tags_select_at_every_strength_and_tactic_links_only_at_tactic(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "- rule: tagged\n  desc: t\n  condition: evt.type = open\n  output: t\n"
        "  priority: WARNING\n  tags: [PCI_DSS_10.2.1, NIST_800-53_AU-6, SOC2_CC7.2]\n"
        "- rule: tactic only\n  desc: o\n  condition: evt.type = open\n  output: o\n"
        "  priority: WARNING\n  tags: [mitre_discovery]\n"
    )
    rules = read_rules([path])
    for framework in ("pci-dss", "nist-800-53", "fedramp", "soc2"):
        for strength in STRENGTHS:
            expected = {"tagged"} | ({"tactic only"} if strength == "tactic" else set())
            assert select_rules(rules, framework, strength=strength) == expected, (
                framework,
                strength,
            )


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
    assert written.criteria["strength"] == "technique"
    assert read_selection(written.selection) == written.rules
    overlay = yaml.safe_load(written.overlay.read_text())
    # E only carries PCI_DSS_10.20 already: it gains no tag, so it has no overlay entry; D is
    # linked through its event source only (generic): not at the default strength.
    gaining = {r.name for r in read_rules([fixture_rules])} - {"E pre-tagged", "D audit rule"}
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
    "dora:Art9", "fedramp:High_AU", "fedramp:Low", "mitre:TA0004", "mitre:T1059", "mitre", "soc2",
    "fedramp",
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
    strength=st.sampled_from(STRENGTHS),
)
@settings(max_examples=150, deadline=None)
def test_selection_equals_enable_by_tag_after_overlay_for_any_rules(
    rules: list[tuple[list[str], str]], spec: str, strength: str
) -> None:
    from feeds.compliance.overlay import overlay_entries
    from feeds.compliance.rulesfile import RuleInfo
    from feeds.compliance.selection import parse_framework_spec

    infos = [
        RuleInfo(f"r{i}", tuple(tags), "Warning", source, True, "mem.yaml")
        for i, (tags, source) in enumerate(rules)
    ]
    effective = {info.name: set(info.tags) for info in infos}
    for entry in overlay_entries(infos, strength=strength):
        effective[entry["rule"]].update(entry["tags"])
    parsed = parse_framework_spec(spec)
    expected = {
        name
        for name, tags in effective.items()
        if any(tag_matches(tag, parsed.framework, parsed.control_prefix, strength) for tag in tags)
    }
    assert select_rules(infos, spec, strength=strength) == expected


def test_gaps_lists_uncovered_controls_per_framework_and_strength(
    fixture_rules: Path, run_cli
) -> None:
    result = run_cli("compliance", "gaps", str(fixture_rules), "-o", "json")
    assert result.returncode == 0, result.stderr
    rows = {(r["framework"], r["strength"]): r for r in json.loads(result.stdout)}
    assert set(rows) == {(f, s) for f in FRAMEWORKS for s in STRENGTHS}
    for (framework, strength), row in rows.items():
        expected = select_rules(read_rules([fixture_rules]), framework, strength=strength)
        assert row["rules_selected"] == len(expected), (framework, strength)
        assert row["controls_covered"] + len(row["uncovered"]) == row["controls"]
    # Weaker links never cover fewer controls.
    for framework in FRAMEWORKS:
        covered = [rows[framework, s]["controls_covered"] for s in STRENGTHS]
        assert covered == sorted(covered), framework
    text = run_cli("compliance", "gaps", str(fixture_rules))
    assert text.returncode == 0 and "RULES SELECTED" in text.stdout
