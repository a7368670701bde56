"""The controls a rule covers, from its own tags and the mapping rows (one derivation for all).

Every consumer (overlay, selection, reports) asks `rule_controls`, so a rule means the same thing
to `compliance overlay`, `--compliance` selection and `compliance report`. A rule covers:
- the controls its own tags name (any upstream style, see tags.py);
- for MITRE, the tactics of the techniques it names (T1611 -> TA0004), so tactic selection works
  for rules tagged with techniques only;
- the controls of every mapping row whose condition (MITRE id, tag, source) the rule meets;
- the FedRAMP `<Baseline>_<id>` controls of each NIST SP 800-53 control it covers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from feeds.compliance.catalogue import FEDRAMP, MITRE, NIST, Catalogue, load_catalogue, validated
from feeds.compliance.errors import ComplianceError
from feeds.compliance.rulesfile import RuleFacts
from feeds.compliance.tags import parse_tag

MAPPING_FILE = "attack-to-controls.yaml"


@dataclass(frozen=True)
class MappingRow:
    condition: str  # "mitre" | "tag" | "source"
    value: str
    framework: str
    controls: tuple[str, ...]
    rationale: str


@cache
def load_mappings() -> tuple[MappingRow, ...]:
    """The rule -> control rows, validated against the schema and the catalogue."""
    text = resources.files("feeds.compliance.mappings").joinpath(MAPPING_FILE).read_text("utf-8")
    data = validated(yaml.safe_load(text), "compliance-mapping", f"mappings/{MAPPING_FILE}")
    catalogue = load_catalogue()
    rows = []
    for number, row in enumerate(data["mappings"], start=1):
        if "when" not in row:
            raise ComplianceError(f"mappings/{MAPPING_FILE}: row {number} is not a rule mapping")
        ((condition, value),) = row["when"].items()
        mapped = MappingRow(
            condition, value, row["framework"], tuple(row["controls"]), row["rationale"]
        )
        _check_row(mapped, number, catalogue)
        rows.append(mapped)
    return tuple(rows)


def _check_row(row: MappingRow, number: int, catalogue: Catalogue) -> None:
    where = f"mappings/{MAPPING_FILE} row {number}"
    if row.framework not in catalogue.frameworks or row.framework in (FEDRAMP, MITRE):
        raise ComplianceError(f"{where}: {row.framework!r} cannot be a mapping target")
    framework = catalogue.frameworks[row.framework]
    missing = [c for c in row.controls if framework.control(c) is None]
    if missing:
        names = ", ".join(missing)
        raise ComplianceError(f"{where}: {names} not in the {framework.name} catalogue")
    if row.condition == "mitre" and catalogue.frameworks[MITRE].control(row.value) is None:
        raise ComplianceError(f"{where}: {row.value} not in the MITRE ATT&CK catalogue")


Controls = dict[str, set[str]]  # framework -> control ids


def tagged_controls(tags: tuple[str, ...], catalogue: Catalogue) -> Controls:
    """The controls the tags name themselves (known to the catalogue or not)."""
    found: Controls = defaultdict(set)
    for tag in tags:
        parsed = parse_tag(tag, catalogue)
        if parsed.kind == "control" and parsed.framework and parsed.control:
            found[parsed.framework].add(parsed.control)
    return found


def _with_implied_tactics(mitre_ids: set[str], catalogue: Catalogue) -> set[str]:
    attack = catalogue.frameworks[MITRE]
    implied = set(mitre_ids)
    for mitre_id in mitre_ids:
        control = attack.control(mitre_id)
        if control is not None:
            implied.update(control.tactics)
    return implied


def _mitre_keys(mitre_ids: set[str]) -> set[tuple[str, str]]:
    """A technique row matches its sub-techniques too: T1070.002 also looks up T1070."""
    keys = set()
    for mitre_id in mitre_ids:
        keys.add(("mitre", mitre_id))
        keys.add(("mitre", mitre_id.split(".", 1)[0]))
    return keys


@cache
def _rows_by_condition() -> dict[tuple[str, str], tuple[tuple[int, MappingRow], ...]]:
    index: dict[tuple[str, str], list[tuple[int, MappingRow]]] = defaultdict(list)
    for number, row in enumerate(load_mappings()):
        index[row.condition, row.value].append((number, row))
    return {key: tuple(rows) for key, rows in index.items()}


def _applicable_rows(rule: RuleFacts, mitre_ids: set[str]) -> list[MappingRow]:
    """The rows whose condition the rule meets, in file order."""
    keys = _mitre_keys(mitre_ids) | {("tag", tag) for tag in rule.tags}
    keys.add(("source", rule.source))
    index = _rows_by_condition()
    found = [entry for key in keys for entry in index.get(key, ())]
    return [row for _number, row in sorted(found, key=lambda entry: entry[0])]


def rule_controls(rule: RuleFacts, catalogue: Catalogue | None = None) -> Controls:
    """Every control the rule covers, per framework (see the module docstring)."""
    catalogue = catalogue or load_catalogue()
    controls = tagged_controls(rule.tags, catalogue)
    if MITRE in controls:
        controls[MITRE] = _with_implied_tactics(controls[MITRE], catalogue)
    for row in _applicable_rows(rule, controls.get(MITRE, set())):
        controls[row.framework].update(row.controls)
    for nist_id in controls.get(NIST, set()):
        base_id = nist_id.split("(", 1)[0]  # an enhancement is in its base control's baselines
        for baseline in catalogue.fedramp_baselines.get(base_id, ()):
            controls[FEDRAMP].add(f"{baseline}_{base_id}")
    return {framework: ids for framework, ids in controls.items() if ids}


def rows_for(rule: RuleFacts, catalogue: Catalogue | None = None) -> list[MappingRow]:
    """The mapping rows that apply to a rule (to explain why it carries a tag)."""
    catalogue = catalogue or load_catalogue()
    tagged = tagged_controls(rule.tags, catalogue).get(MITRE, set())
    return _applicable_rows(rule, _with_implied_tactics(tagged, catalogue))
