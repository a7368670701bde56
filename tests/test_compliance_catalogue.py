"""The framework catalogue and the mappings: schema-valid data, consistent with each other."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

from feeds.compliance.catalogue import load_catalogue
from feeds.compliance.mapping import load_mappings

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
FRAMEWORK_FILES = sorted(
    p.name
    for p in resources.files("feeds.compliance.frameworks").iterdir()
    if p.name.endswith(".yaml")
)
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


def _schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


def _data(package: str, name: str) -> dict:
    return yaml.safe_load(resources.files(package).joinpath(name).read_text("utf-8"))


@pytest.mark.parametrize("name", FRAMEWORK_FILES)
def test_each_catalogue_file_validates_against_its_schema(name: str) -> None:
    jsonschema.validate(_data("feeds.compliance.frameworks", name), _schema("compliance-catalogue"))


@pytest.mark.parametrize("name", ["attack-to-controls.yaml", "nist-800-53-to-fedramp.yaml"])
def test_each_mapping_file_validates_and_every_row_has_a_rationale(name: str) -> None:
    data = _data("feeds.compliance.mappings", name)
    jsonschema.validate(data, _schema("compliance-mapping"))
    assert all(row["rationale"].strip() for row in data["mappings"])


def test_the_schema_rejects_a_control_without_title() -> None:
    data = _data("feeds.compliance.frameworks", "soc2.yaml")
    del data["controls"][0]["title"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, _schema("compliance-catalogue"))


def test_the_catalogue_has_every_framework_of_the_brief() -> None:
    assert set(load_catalogue().frameworks) >= REQUIRED_FRAMEWORKS


def test_every_control_a_mapping_points_at_is_in_the_catalogue_with_a_title() -> None:
    catalogue = load_catalogue()
    rows = _data("feeds.compliance.mappings", "attack-to-controls.yaml")["mappings"]
    for row in rows:
        framework = catalogue.frameworks[row["framework"]]
        for control in row["controls"]:
            assert framework.controls[control].title, (row, control)
        if "mitre" in row["when"]:
            assert row["when"]["mitre"] in catalogue.frameworks["mitre-attack"].controls
    assert len(load_mappings()) == len(rows)


def test_fedramp_controls_are_the_nist_controls_of_each_baseline() -> None:
    catalogue = load_catalogue()
    rows = _data("feeds.compliance.mappings", "nist-800-53-to-fedramp.yaml")["mappings"]
    expected = {f"{b}_{row['nist']}" for row in rows for b in row["baselines"]}
    assert set(catalogue.frameworks["fedramp"].controls) == expected
    high = {c for c in expected if c.startswith("High_")}
    low = {c for c in expected if c.startswith("Low_")}
    # FedRAMP High selects everything Low does (baselines are nested).
    assert {c.removeprefix("Low_") for c in low} <= {c.removeprefix("High_") for c in high}
    for control in catalogue.frameworks["fedramp"].controls.values():
        nist_id = control.id.split("_", 1)[1]
        assert control.title == catalogue.frameworks["nist-800-53"].controls[nist_id].title


def test_mitre_techniques_name_their_tactics_and_the_containers_matrix_is_covered() -> None:
    attack = load_catalogue().frameworks["mitre-attack"]
    tactics = {c.id for c in attack.controls.values() if c.kind == "tactic"}
    assert len(tactics) == 14
    for control in attack.controls.values():
        if control.kind == "technique":
            assert control.tactics and set(control.tactics) <= tactics, control
            assert control.family in control.tactics
    containers = {c.id for c in attack.controls.values() if "containers" in c.matrices}
    # The Containers matrix techniques (attack.mitre.org/matrices/enterprise/containers).
    assert {"T1609", "T1610", "T1611", "T1612", "T1613", "T1525", "T1552.007"} <= containers


def test_upstream_mitre_ids_are_all_in_the_catalogue(shared_dir: Path) -> None:
    import re

    attack = load_catalogue().frameworks["mitre-attack"]
    ids = set()
    for path in sorted((shared_dir / "upstream-rules").rglob("*.yaml")):
        for item in yaml.safe_load(path.read_text()) or []:
            for tag in (item.get("tags") or []) if isinstance(item, dict) else []:
                match = re.match(r"(TA\d{4}|T\d{4}(\.\d{3})?)\b", str(tag))
                if match:
                    ids.add(match.group(1))
    assert ids, "upstream rules carry ATT&CK ids"
    assert ids <= set(attack.controls), ids - set(attack.controls)


def test_cli_frameworks_and_controls(run_cli) -> None:
    result = run_cli("compliance", "frameworks", "-o", "json")
    assert result.returncode == 0, result.stderr
    listed = {row["id"]: row for row in json.loads(result.stdout)}
    catalogue = load_catalogue()
    assert set(listed) == set(catalogue.frameworks)
    for framework_id, row in listed.items():
        assert row["controls"] == len(catalogue.frameworks[framework_id].controls)
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
    result = run_cli("compliance", "controls", "hipa")
    assert result.returncode == 2
    assert "unknown compliance framework" in result.stderr and "did you mean hipaa" in result.stderr
