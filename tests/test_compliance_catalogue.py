"""The framework catalogue and the mappings: schema-valid, generated from the authoritative data
without drift, every id checked against that data, every id the mappings use in the catalogue."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

from feeds.compliance.catalogue import load_catalogue, read_catalogue_data
from feeds.compliance.mapping import load_evidence, load_mappings

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
PACKAGE = Path(__file__).resolve().parent.parent / "feeds" / "compliance"
REQUIRED_FRAMEWORKS = {
    "pci-dss",
    "soc2",
    "hipaa",
    "nist-800-53",
    "fedramp",
    "nis2",
    "dora",
    "mitre-attack",
}
GENERATED = [
    "frameworks/catalogue.json",
    "mappings/evidence.json",
    "frameworks/NOTICE.md",
    "frameworks/ATTACK-LICENSE.txt",
]


@pytest.fixture(scope="module")
def data_dir(shared_dir: Path) -> Path:
    path = shared_dir / "upstream-compliance"
    if not path.is_dir():
        pytest.skip(f"{path} is absent: the authoritative compliance data is only in the workspace")
    return path


def _json(data_dir: Path, name: str) -> dict:
    return json.loads((data_dir / name).read_text())


def _schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


def _mapping_rows() -> list[dict]:
    text = resources.files("feeds.compliance.mappings").joinpath("attack-to-controls.yaml")
    return yaml.safe_load(text.read_text("utf-8"))["mappings"]


def test_the_catalogue_validates_against_its_schema() -> None:
    jsonschema.validate(read_catalogue_data(), _schema("compliance-catalogue"))


def test_the_mapping_file_validates_and_every_row_has_a_strength_and_a_rationale() -> None:
    data = {"mappings": _mapping_rows()}
    jsonschema.validate(data, _schema("compliance-mapping"))
    assert all(row["rationale"].strip() and row["strength"] for row in data["mappings"])
    # Tactic and event-source rows are generic; technique and scope-tag rows specific.
    for row in data["mappings"]:
        ((condition, value),) = row["when"].items()
        generic = condition == "source" or (condition == "mitre" and value.startswith("TA"))
        assert row["strength"] == ("tactic" if generic else "technique"), row


def test_the_schemas_reject_a_control_without_title_and_a_row_without_strength() -> None:
    data = read_catalogue_data()
    del data["frameworks"][1]["controls"][0]["title"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, _schema("compliance-catalogue"))
    row = dict(_mapping_rows()[0])
    del row["strength"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"mappings": [row]}, _schema("compliance-mapping"))


def test_the_catalogue_has_every_framework_of_the_brief_with_attribution() -> None:
    assert set(load_catalogue().frameworks) >= REQUIRED_FRAMEWORKS
    data = read_catalogue_data()
    attributed = {entry["data"] for entry in data["_attribution"]}
    assert attributed >= {"nist", "fedramp", "attack", "ctid", "hipaa", "nis2", "dora"}
    notice = (PACKAGE / "frameworks" / "NOTICE.md").read_text()
    assert "The MITRE Corporation" in notice and "own" in notice
    assert "ATT&CK" in (PACKAGE / "frameworks" / "ATTACK-LICENSE.txt").read_text()
    for framework_id in ("pci-dss", "soc2"):  # licensed texts: the catalogue says whose words
        assert "own" in load_catalogue().frameworks[framework_id].source


def test_every_id_the_mappings_use_is_an_active_control_of_the_catalogue() -> None:
    catalogue = load_catalogue()
    attack = catalogue.frameworks["mitre-attack"]
    for row in _mapping_rows():
        framework = catalogue.frameworks[row["framework"]]
        for control in row["controls"]:
            assert framework.controls[control].active, (row, control)
        if "mitre" in row["when"]:
            assert attack.controls[row["when"]["mitre"]].active, row
    assert len(load_mappings()) == len(_mapping_rows())
    evidence = load_evidence()
    nist = catalogue.frameworks["nist-800-53"]
    hipaa = catalogue.frameworks["hipaa"]
    for technique, controls in evidence["ctid"]["techniques"].items():
        assert attack.controls[technique].active, technique  # revoked ids moved to replacements
        assert attack.controls[technique].kind == "technique"
        for control in controls:
            assert nist.controls[control].active, (technique, control)
    assert set(evidence["ctid"]["generic_controls"]) <= set(nist.controls)
    for control, standards in evidence["sp800_66"]["controls"].items():
        assert control in nist.controls, control
        assert all(hipaa.controls[s].kind == "standard" for s in standards), (control, standards)


def test_the_committed_catalogue_is_what_the_generator_makes_from_the_data(
    data_dir: Path, tmp_path: Path
) -> None:
    from feeds.compliance.generate_catalogue import generate

    generate(data_dir, tmp_path)
    for name in GENERATED:
        committed = (PACKAGE / name).read_text("utf-8")
        assert (tmp_path / name).read_text("utf-8") == committed, (
            f"{name} drifted from the data: run python -m feeds.compliance.generate_catalogue"
        )


def test_nist_controls_are_exactly_the_data_with_withdrawn_flagged(data_dir: Path) -> None:
    nist = load_catalogue().frameworks["nist-800-53"]
    items = _json(data_dir, "nist-800-53r5.json")["controls"]
    for item in items:
        control = nist.controls[item["id"]]
        assert control.title == (item.get("title_oscal_5_1_1") or item["title"]), item["id"]
        assert control.family == item["family"]
        assert (control.status == "withdrawn") == item["withdrawn"], item["id"]
    extra = set(nist.controls) - {item["id"] for item in items}
    ctid_names = _json(data_dir, "attack-to-nist80053r5.json")["control_names"]
    assert extra == {"IA-13"} and nist.controls["IA-13"].title == ctid_names["IA-13"]
    assert len([i for i in items if i["withdrawn"]]) == 179


def test_fedramp_baselines_are_exactly_the_gsa_profiles(data_dir: Path) -> None:
    catalogue = load_catalogue()
    fedramp = catalogue.frameworks["fedramp"]
    nist = catalogue.frameworks["nist-800-53"]
    profiles = _json(data_dir, "fedramp-rev5-baselines.json")["baselines"]
    expected = {
        f"{baseline}_{control}"
        for baseline in ("Low", "Moderate", "High")
        for control in profiles[baseline.lower()]["controls"]
    }
    assert set(fedramp.controls) == expected
    for baseline, count in (("Low", 156), ("Moderate", 323), ("High", 410)):
        assert sum(1 for c in fedramp.controls.values() if c.family == baseline) == count
    for control in fedramp.controls.values():
        nist_id = control.id.split("_", 1)[1]
        assert control.title == nist.controls[nist_id].title
        assert nist.controls[nist_id].active


def test_attack_ids_names_tactics_and_states_are_exactly_the_data(data_dir: Path) -> None:
    attack = load_catalogue().frameworks["mitre-attack"]
    data = _json(data_dir, "attack-enterprise.json")
    by_short = {t["shortname"]: t["id"] for t in data["tactics"]}
    for tactic in data["tactics"]:
        assert attack.controls[tactic["id"]].title == tactic["name"]
        assert attack.families[tactic["id"]] == tactic["name"]
    for item in data["techniques"]:
        control = attack.controls[item["id"]]
        assert control.title == item["name"], item["id"]
        assert set(control.tactics) == {by_short[s] for s in item["tactics"]}, item["id"]
        assert control.family in control.tactics
        state = "revoked" if item["revoked"] else "deprecated" if item["deprecated"] else "active"
        assert control.status == state, item["id"]
        if item["revoked"]:
            replacement = attack.controls[control.replaced_by]
            assert replacement.active, item["id"]
    assert len(attack.controls) == len(data["tactics"]) + len(data["techniques"])
    containers = {c.id for c in attack.controls.values() if "containers" in c.matrices}
    assert {"T1609", "T1610", "T1611", "T1612", "T1613", "T1552.007"} <= containers


def test_hipaa_nis2_dora_titles_are_the_data_and_specifications_sit_under_standards(
    data_dir: Path,
) -> None:
    catalogue = load_catalogue()
    hipaa = catalogue.frameworks["hipaa"]
    data = _json(data_dir, "hipaa-security-rule.json")
    assert hipaa.families == {s["id"]: s["title"] for s in data["sections"]}
    standards = {s["id"]: s for s in data["standards"]}
    for standard in standards.values():
        assert hipaa.controls[standard["id"]].title == standard["title"]
    specifications = [c for c in hipaa.controls.values() if c.kind == "specification"]
    assert specifications
    for spec in specifications:
        assert spec.standard in standards
        assert spec.family == standards[spec.standard]["section"]
    nis2 = catalogue.frameworks["nis2"]
    points = _json(data_dir, "nis2-article21.json")["article_21_2_points"]
    assert list(nis2.controls) == [f"21.2.{p['point']}" for p in points]
    for point in points:
        title = nis2.controls[f"21.2.{point['point']}"].title
        assert point["text"].lower().startswith(title.lower()), (title, point["text"])
    dora = catalogue.frameworks["dora"]
    articles = _json(data_dir, "dora-articles-5-16.json")["articles"]
    assert {c: dora.controls[c].title for c in dora.controls} == {
        f"Art{a['article']}": a["title"] for a in articles
    }


def test_pci_and_soc2_ids_are_the_data_with_titles_of_our_own(data_dir: Path) -> None:
    catalogue = load_catalogue()
    pci = catalogue.frameworks["pci-dss"]
    ids = _json(data_dir, "pcidss-4.0.1-ids.json")["ids"]
    # Principal requirements (and Appendix A) are the families; the rest are controls.
    assert set(pci.controls) | set(pci.families) == set(ids)
    soc2 = catalogue.frameworks["soc2"]
    criteria = _json(data_dir, "soc2-tsc-2017-ids.json")["criteria"]
    assert list(soc2.controls) == criteria
    for control in [*pci.controls.values(), *soc2.controls.values()]:
        assert 0 < len(control.title) <= 110, control


def test_upstream_attack_ids_are_in_the_catalogue_and_revoked_ones_are_flagged(
    shared_dir: Path,
) -> None:
    from feeds.compliance.mapping import rule_controls
    from feeds.compliance.rulesfile import RuleInfo
    from feeds.compliance.tags import parse_tag

    catalogue = load_catalogue()
    attack = catalogue.frameworks["mitre-attack"]
    ids = set()
    for path in sorted((shared_dir / "upstream-rules").rglob("*.yaml")):
        for item in yaml.safe_load(path.read_text()) or []:
            for tag in (item.get("tags") or []) if isinstance(item, dict) else []:
                match = re.match(r"(TA\d{4}|T\d{4}(\.\d{3})?)\b", str(tag))
                if match:
                    ids.add(match.group(1))
    assert ids, "upstream rules carry ATT&CK ids"
    assert ids <= set(attack.controls), ids - set(attack.controls)
    for mitre_id in ids:
        parsed = parse_tag(mitre_id, catalogue)
        assert (parsed.reason is None) == attack.controls[mitre_id].active, parsed
    # A revoked id (DLL Side-Loading, revoked by Hijack Execution Flow: DLL) is flagged and
    # mapped through its replacement, whose tactics and 800-53 controls the rule then covers.
    parsed = parse_tag("T1574.002", catalogue)
    assert parsed.known and "revoked" in str(parsed.reason) and "T1574.001" in str(parsed.reason)
    rule = RuleInfo("old", ("T1574.002",), "Warning", "syscall", True, "mem.yaml")
    controls = rule_controls(rule, catalogue, "explicit")
    assert {"T1574.002", "T1574.001", "TA0003", "TA0004", "TA0005"} <= controls["mitre-attack"]
    replacement = set(load_evidence()["ctid"]["techniques"]["T1574.001"])
    technique_level = rule_controls(rule, catalogue, "tactic")["nist-800-53"]
    assert replacement <= technique_level


def test_cli_frameworks_and_controls(run_cli) -> None:
    result = run_cli("compliance", "frameworks", "-o", "json")
    assert result.returncode == 0, result.stderr
    listed = {row["id"]: row for row in json.loads(result.stdout)}
    catalogue = load_catalogue()
    assert set(listed) == set(catalogue.frameworks)
    for framework_id, row in listed.items():
        framework = catalogue.frameworks[framework_id]
        assert row["controls"] == len(framework.active_controls)
        assert row["controls"] + row["inactive"] == len(framework.controls)
    text = run_cli("compliance", "frameworks")
    assert text.returncode == 0, text.stderr
    lines = {line.split()[0]: line for line in text.stdout.splitlines()[1:]}
    for framework_id, row in listed.items():
        assert ", ".join(row["aliases"]) in lines[framework_id]
    result = run_cli("compliance", "controls", "pci:10.2", "-o", "json")
    assert result.returncode == 0, result.stderr
    ids = [row["id"] for row in json.loads(result.stdout)]
    pci = catalogue.frameworks["pci-dss"].controls
    assert ids == [c for c in pci if c == "10.2" or c.startswith("10.2.")]
    revoked = run_cli("compliance", "controls", "mitre:T1574.002", "-o", "json")
    assert json.loads(revoked.stdout)[0]["replaced_by"] == "T1574.001"
    result = run_cli("compliance", "controls", "hipa")
    assert result.returncode == 2
    assert "unknown compliance framework" in result.stderr and "did you mean hipaa" in result.stderr


def _data_copy(data_dir: Path, tmp_path: Path) -> Path:
    """The authoritative files, linked into a directory a test may alter."""
    copy = tmp_path / "data"
    copy.mkdir()
    for path in data_dir.iterdir():
        (copy / path.name).symlink_to(path)
    return copy


def test_the_generator_refuses_our_ids_the_data_does_not_have(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feeds.compliance import generate_catalogue
    from feeds.compliance.generate_catalogue import DataError, generate

    data = _data_copy(data_dir, tmp_path)
    pci = _json(data_dir, "pcidss-4.0.1-ids.json")
    pci["ids"].remove("10.3.4")  # we title it; a data set without it must stop the build
    (data / "pcidss-4.0.1-ids.json").unlink()
    (data / "pcidss-4.0.1-ids.json").write_text(json.dumps(pci))
    with pytest.raises(DataError, match=r"10\.3\.4"):
        generate(data, tmp_path / "out")
    authored = yaml.safe_load(generate_catalogue.AUTHORED.read_text())
    authored["hipaa_specifications"].append(
        {"id": "164.312(b)(2)(i)", "standard": "164.312(b)", "title": "Invented", "ra": "R"}
    )
    bad = tmp_path / "authored.yaml"
    bad.write_text(yaml.safe_dump(authored))
    monkeypatch.setattr(generate_catalogue, "AUTHORED", bad)
    with pytest.raises(DataError, match=r"164\.312\(b\)"):  # the data has no required spec there
        generate(data_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written when the data disagrees
