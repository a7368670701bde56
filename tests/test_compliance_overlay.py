"""The overlay: a valid Falco rules file appending canonical framework tags to every rule."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from feeds.compliance.catalogue import load_catalogue
from feeds.compliance.tags import parse_tag

CATALOGUE = load_catalogue()

# The canonical tag of each framework, written out independently of feeds.compliance.tags.
TAG_PREFIX = {
    "pci-dss": "PCI_DSS_",
    "soc2": "SOC2_",
    "hipaa": "HIPAA_",
    "nist-800-53": "NIST_800-53_",
    "fedramp": "FedRAMP_",
    "nis2": "NIS2_",
    "dora": "DORA_",
}
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ATTACK_ID = re.compile(r"TA\d{4}|T\d{4}(\.\d{3})?")
ATTACK_TECHNIQUE = re.compile(r"T\d{4}(\.\d{3})?")

FIXTURE_RULES = """
- required_engine_version: 0.31.0
- rule: A stable critical shell
  desc: a
  condition: evt.type = execve
  output: a
  priority: CRITICAL
  tags: [maturity_stable, host, mitre_execution, T1059]
- rule: B incubating credentials
  desc: b
  condition: evt.type = open
  output: b
  priority: WARNING
  tags: [maturity_incubating, container, mitre_credential_access, T1552]
- rule: C sandbox log removal
  desc: c
  condition: evt.type = unlink
  output: c
  priority: NOTICE
  enabled: false
  tags: [maturity_sandbox, host, T1070]
- rule: D audit rule
  desc: d
  condition: ka.verb = create
  output: d
  priority: INFO
  source: k8s_audit
  tags: [k8s]
- rule: E pre-tagged
  desc: e
  condition: evt.type = connect
  output: e
  priority: DEBUG
  tags: [PCI_DSS_10.20]
"""


def upstream_files(shared_dir: Path) -> list[str]:
    """Upstream rules files in a load order Falco accepts (GKE overrides after k8s audit)."""
    base = shared_dir / "upstream-rules"
    return [
        *sorted(str(p) for p in base.glob("*.yaml")),
        str(base / "k8saudit-gke/k8s_audit_rules_gke.yaml"),
    ]


def rule_tags(paths: list[str]) -> dict[str, list[str]]:
    """name -> tags of rule definitions (PyYAML, independent of falconet's reader)."""
    tags: dict[str, list[str]] = {}
    for path in paths:
        for item in yaml.load(Path(path).read_text(), Loader=SAFE_LOADER) or []:
            if isinstance(item, dict) and "rule" in item and "condition" in item:
                tags[item["rule"]] = [str(t) for t in item.get("tags") or []]
    return tags


def effective_tags(paths: list[str], overlay_text: str) -> dict[str, set[str]]:
    """Tags each rule has once the overlay is applied (append)."""
    tags = {name: set(t) for name, t in rule_tags(paths).items()}
    for entry in yaml.load(overlay_text, Loader=SAFE_LOADER) or []:
        tags[entry["rule"]].update(entry["tags"])
    return tags


def tag_matches(tag: str, framework: str, prefix: str | None, strength: str = "technique") -> bool:
    """Would Falco's enable-by-tag with falconet's canonical tags select this tag.

    The whole of ATT&CK at a strength above `tactic` is its techniques (tactics are its
    families: a rule naming only a tactic covers ATT&CK at `tactic` strength)."""
    if framework == "mitre-attack":
        whole = ATTACK_ID if prefix is not None or strength == "tactic" else ATTACK_TECHNIQUE
        if not whole.fullmatch(tag):
            return False
        control = tag
    elif tag.startswith(TAG_PREFIX[framework]):
        control = tag[len(TAG_PREFIX[framework]) :]
    else:
        return False
    if prefix is None:
        return True
    control, prefix = control.lower(), prefix.lower()
    return control == prefix or (control.startswith(prefix) and control[len(prefix)] in ".(-_")


@pytest.fixture
def fixture_rules(tmp_path: Path) -> Path:
    path = tmp_path / "fixture_rules.yaml"
    path.write_text(FIXTURE_RULES)
    return path


def test_overlay_adds_mapped_tags_implied_tactics_and_fedramp(fixture_rules: Path, run_cli) -> None:
    result = run_cli("compliance", "overlay", str(fixture_rules))
    assert result.returncode == 0, result.stderr
    entries = {e["rule"]: e for e in yaml.safe_load(result.stdout)}
    log_removal = entries["C sandbox log removal"]
    assert log_removal["override"] == {"tags": "append"}
    # T1070 (indicator removal) -> AU-9 by its mapping row; AU-9 is in every FedRAMP baseline.
    assert {"NIST_800-53_AU-9", "FedRAMP_Low_AU-9", "FedRAMP_High_AU-9"} <= set(log_removal["tags"])
    # The tactic of the technique is made explicit, so `enable: {tag: TA0005}` works in Falco.
    assert "TA0005" in log_removal["tags"]
    assert "T1070" not in log_removal["tags"]  # already on the rule: not appended twice
    # A tactic named by `mitre_execution` gets its canonical id.
    assert "TA0002" in entries["A stable critical shell"]["tags"]
    # Plugin rules without ATT&CK tags are mapped through their event source: a generic link,
    # so only an overlay of strength `tactic` carries it.
    assert "D audit rule" not in entries
    tactic = run_cli("compliance", "overlay", str(fixture_rules), "--strength", "tactic")
    assert "# Strength: tactic" in tactic.stdout
    entries = {e["rule"]: e for e in yaml.safe_load(tactic.stdout)}
    assert "NIST_800-53_AU-6" in entries["D audit rule"]["tags"]


def test_overlay_of_all_upstream_files_is_a_valid_append_only_rules_file(
    shared_dir: Path, run_cli
) -> None:
    files = upstream_files(shared_dir)
    result = run_cli("compliance", "overlay", *files, "--strength", "tactic")
    assert result.returncode == 0, result.stderr
    entries = yaml.safe_load(result.stdout)
    upstream = rule_tags(files)
    assert {e["rule"] for e in entries} == set(upstream), "every upstream rule gains tags"
    default = {
        e["rule"]: set(e["tags"])
        for e in yaml.safe_load(run_cli("compliance", "overlay", *files).stdout)
    }
    assert set(default) < set(upstream), "the default strength leaves out generic-only links"
    for entry in entries:
        assert default.get(entry["rule"], set()) <= set(entry["tags"])
    baselines = CATALOGUE.fedramp_baselines
    for entry in entries:
        assert set(entry) == {"rule", "tags", "override"}
        assert entry["override"] == {"tags": "append"}
        assert len(entry["tags"]) == len(set(entry["tags"]))
        assert not set(entry["tags"]) & set(upstream[entry["rule"]])
        for tag in entry["tags"]:
            parsed = parse_tag(tag, CATALOGUE)
            assert parsed.kind == "control", tag
        nist = {
            t.removeprefix("NIST_800-53_")
            for t in entry["tags"] + upstream[entry["rule"]]
            if t.startswith("NIST_800-53_")
        }
        for control in nist:
            for baseline in baselines.get(control, []):
                assert f"FedRAMP_{baseline}_{control}" in entry["tags"], (entry["rule"], control)


def test_an_override_without_its_base_file_is_rejected_like_falco_does(
    shared_dir: Path, run_cli
) -> None:
    gke = shared_dir / "upstream-rules/k8saudit-gke/k8s_audit_rules_gke.yaml"
    result = run_cli("compliance", "overlay", str(gke))
    assert result.returncode == 2
    assert "no rule by that name already exists" in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    base = shared_dir / "upstream-rules/k8s_audit_rules.yaml"
    result = run_cli("compliance", "overlay", str(base), str(gke), "--strength", "tactic")
    assert result.returncode == 0, result.stderr
    assert "Disallowed K8s User" in {e["rule"] for e in yaml.safe_load(result.stdout)}


@pytest.mark.skipif(
    importlib.util.find_spec("engine.loader") is None,
    reason="falconet's rules loader (engine/loader.py) is not merged into this branch yet",
)
def test_upstream_files_plus_overlay_load_with_zero_errors(
    shared_dir: Path, run_cli, tmp_path: Path
) -> None:
    from engine.loader import load_rules_files

    files = upstream_files(shared_dir)
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(run_cli("compliance", "overlay", *files).stdout)
    loaded = load_rules_files([*files, str(overlay)], use_cache=False)
    errors = [r.as_json(loaded.contents) for r in loaded.results if not r.successful]
    assert not errors
    tags = effective_tags(files, overlay.read_text())
    for rule in loaded.rules:
        assert set(tags[rule.name]) <= set(rule.tags), rule.name


def test_explain_shows_the_rows_behind_each_appended_tag(fixture_rules: Path, run_cli) -> None:
    import json

    result = run_cli(
        "compliance", "explain", str(fixture_rules), "--rule", "C sandbox log removal", "-o", "json"
    )
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    rows = {(next(iter(m["when"].values())), m["framework"]): m for m in facts["mappings"]}
    # T1070's own row and, through the implied tactic, the TA0005 rows.
    assert rows["T1070", "nist-800-53"]["controls"] == ["AU-9"]
    assert ("TA0005", "pci-dss") in rows and all(m["rationale"] for m in facts["mappings"])
    overlay = run_cli("compliance", "overlay", str(fixture_rules))
    entry = next(e for e in yaml.safe_load(overlay.stdout) if e["rule"] == "C sandbox log removal")
    assert facts["overlay_tags"] == entry["tags"]
    # Every link has a strength and evidence; T1070's CTID mappings are technique evidence.
    links = facts["links"]
    assert links and all(link["evidence"] and link["strength"] for link in links)
    ctid = [
        link
        for link in links
        if link["framework"] == "nist-800-53" and "CTID" in " ".join(link["evidence"])
    ]
    assert {"CP-9", "SI-4"} <= {link["control"] for link in ctid}
    strengths = {link["control"]: link["strength"] for link in ctid}
    assert (strengths["CP-9"], strengths["SI-4"]) == ("technique", "tactic")  # SI-4 is generic
    assert facts["best"]["mitre-attack:T1070"] == "explicit"
    text = run_cli("compliance", "explain", str(fixture_rules), "--rule", "C sandbox log removal")
    assert "mitigated by CP-9" in text.stdout and "STRENGTH" in text.stdout
    missing = run_cli("compliance", "explain", str(fixture_rules), "--rule", "C sandbox")
    assert missing.returncode == 3 and "did you mean 'C sandbox log removal'" in missing.stderr
