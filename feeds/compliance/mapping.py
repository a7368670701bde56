"""The controls a rule covers, each link with a strength and its evidence (one derivation for all).

Every consumer (overlay, selection, reports, explain) asks `rule_links` / `rule_controls`, so a
rule means the same thing to `compliance overlay`, `--compliance` selection and `compliance
report` at the same `--strength`. A link is:

- `explicit`: a tag of the rule names the control (any upstream style, see tags.py); for ATT&CK,
  a technique, the tactics of that technique (ATT&CK's own membership) and the replacement of a
  revoked technique; for FedRAMP, the baselines that select an explicit NIST control;
- `technique`: the rule's ATT&CK technique maps to the control in published evidence (the CTID
  ATT&CK -> 800-53 mappings, mappings/evidence.json) through a control that is specific to some
  techniques, or in a falconet row on that technique or on a scope tag; from 800-53 onward to
  FedRAMP (GSA baselines) and HIPAA (NIST SP 800-66r2 crosswalk) at the strength of the NIST link,
  at most `technique`;
- `tactic`: a generic monitoring control reached only through the rule's tactic (or its event
  source), or through a CTID control mapped to more than a quarter of all techniques (SI-4,
  CM-6...: it says nothing specific about the technique).

Framework-level selection (`--compliance mitre-attack`, no control prefix) asks for a technique:
an ATT&CK tactic is a family of techniques, so a rule linked to ATT&CK only through tactics (tagged
`mitre_execution` and no technique) covers the framework at `tactic` strength only, although its
link to the tactic itself (`--compliance mitre-attack:TA0002`) is explicit.

Selection at strength S keeps the controls whose strongest link is S or stronger.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import yaml

from feeds.compliance.catalogue import FEDRAMP, MITRE, NIST, Catalogue, load_catalogue, validated
from feeds.compliance.errors import ComplianceError, SelectionError
from feeds.compliance.rulesfile import RuleFacts
from feeds.compliance.tags import parse_tag

MAPPING_FILE = "attack-to-controls.yaml"
EVIDENCE_FILE = "evidence.json"
HIPAA = "hipaa"

STRENGTHS = ("explicit", "technique", "tactic")  # strongest first
DEFAULT_STRENGTH = "technique"


def normalise_strength(text: str | None) -> str:
    """A strength name (case-insensitive); None gives the default."""
    if text is None:
        return DEFAULT_STRENGTH
    lowered = text.strip().lower()
    if lowered not in STRENGTHS:
        raise SelectionError(f"unknown strength {text!r}", f"use one of: {', '.join(STRENGTHS)}")
    return lowered


def at_least(strength: str, minimum: str) -> bool:
    return STRENGTHS.index(strength) <= STRENGTHS.index(minimum)


def _weaker(first: str, second: str) -> str:
    return first if STRENGTHS.index(first) >= STRENGTHS.index(second) else second


@dataclass(frozen=True)
class MappingRow:
    condition: str  # "mitre" | "tag" | "source"
    value: str
    framework: str
    controls: tuple[str, ...]
    rationale: str
    strength: str = "technique"


@dataclass(frozen=True)
class Link:
    """One reason a rule covers one control: its strength and the chain of evidence."""

    framework: str
    control: str
    strength: str
    evidence: tuple[str, ...]  # steps, from the rule's own facts to the control

    def as_dict(self) -> dict[str, object]:
        return {
            "framework": self.framework,
            "control": self.control,
            "strength": self.strength,
            "evidence": list(self.evidence),
        }


@cache
def load_mappings() -> tuple[MappingRow, ...]:
    """The rule -> control rows, validated against the schema and the catalogue."""
    text = resources.files("feeds.compliance.mappings").joinpath(MAPPING_FILE).read_text("utf-8")
    data = validated(yaml.safe_load(text), "compliance-mapping", f"mappings/{MAPPING_FILE}")
    catalogue = load_catalogue()
    rows = []
    for number, row in enumerate(data["mappings"], start=1):
        ((condition, value),) = row["when"].items()
        mapped = MappingRow(
            condition,
            value,
            row["framework"],
            tuple(row["controls"]),
            row["rationale"],
            row["strength"],
        )
        _check_row(mapped, number, catalogue)
        rows.append(mapped)
    return tuple(rows)


def _check_row(row: MappingRow, number: int, catalogue: Catalogue) -> None:
    where = f"mappings/{MAPPING_FILE} row {number}"
    if row.framework not in catalogue.frameworks or row.framework in (FEDRAMP, MITRE):
        raise ComplianceError(f"{where}: {row.framework!r} cannot be a mapping target")
    framework = catalogue.frameworks[row.framework]
    missing = [
        c for c in row.controls if (found := framework.control(c)) is None or not found.active
    ]
    if missing:
        names = ", ".join(missing)
        raise ComplianceError(f"{where}: {names} not in force in the {framework.name} catalogue")
    if row.condition == "mitre":
        control = catalogue.frameworks[MITRE].control(row.value)
        if control is None or not control.active:
            raise ComplianceError(f"{where}: {row.value} is not an active ATT&CK id")


@cache
def load_evidence() -> dict[str, Any]:
    """The published mappings (generated from the authoritative data, see generate_catalogue)."""
    package = resources.files("feeds.compliance.mappings")
    return json.loads(package.joinpath(EVIDENCE_FILE).read_text("utf-8"))


Controls = Mapping[str, Set[str]]  # framework -> control ids


def tagged_controls(tags: Iterable[str], catalogue: Catalogue) -> dict[str, set[str]]:
    """The controls the tags name themselves (known to the catalogue or not)."""
    found: dict[str, set[str]] = defaultdict(set)
    for tag in tags:
        parsed = parse_tag(tag, catalogue)
        if parsed.kind == "control" and parsed.framework and parsed.control:
            found[parsed.framework].add(parsed.control)
    return found


def _mitre_keys(mitre_ids: Iterable[str]) -> set[tuple[str, str]]:
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


def _applicable_rows(tags: Iterable[str], source: str, mitre_ids: set[str]) -> list[MappingRow]:
    """The rows whose condition the rule meets, in file order."""
    keys = _mitre_keys(mitre_ids) | {("tag", tag) for tag in tags}
    keys.add(("source", source))
    index = _rows_by_condition()
    found = [entry for key in keys for entry in index.get(key, ())]
    return [row for _number, row in sorted(found, key=lambda entry: entry[0])]


def _explicit_links(tags: Iterable[str], catalogue: Catalogue) -> list[Link]:
    """Links the rule's own tags make, with ATT&CK tactics and replacements of revoked ids."""
    attack = catalogue.frameworks[MITRE]
    links: list[Link] = []
    for tag in tags:
        parsed = parse_tag(tag, catalogue)
        if parsed.kind != "control" or not parsed.framework or not parsed.control:
            continue
        step = f"tag {tag}"
        links.append(Link(parsed.framework, parsed.control, "explicit", (step,)))
        if parsed.framework != MITRE:
            continue
        technique = attack.control(parsed.control)
        if technique is not None and technique.replaced_by:
            replaced = (
                f"{technique.id} is revoked in ATT&CK {attack.version}, "
                f"replaced by {technique.replaced_by}"
            )
            links.append(Link(MITRE, technique.replaced_by, "explicit", (step, replaced)))
            technique = attack.control(technique.replaced_by)
        if technique is not None and technique.kind == "technique":
            for tactic in technique.tactics:
                member = (
                    f"{technique.id} is a technique of tactic {tactic} (ATT&CK {attack.version})"
                )
                links.append(Link(MITRE, tactic, "explicit", (step, member)))
    return links


def _ctid_links(technique_links: list[Link], catalogue: Catalogue) -> list[Link]:
    """NIST SP 800-53 controls the CTID maps the rule's techniques to (a sub-technique without
    a mapping of its own takes its parent's)."""
    ctid = load_evidence()["ctid"]
    mapped, generic = ctid["techniques"], ctid["generic_controls"]
    total, version = ctid["techniques_mapped"], ctid["attack_version"]
    links: list[Link] = []
    for link in technique_links:
        technique = link.control
        if technique not in mapped and "." in technique:
            technique = technique.split(".", 1)[0]
        for control in mapped.get(technique, ()):
            step = f"CTID ATT&CK v{version} -> 800-53: {technique} mitigated by {control}"
            if control in generic:
                step += f" (generic: mapped to {generic[control]} of {total} techniques)"
            strength = "tactic" if control in generic else "technique"
            links.append(Link(NIST, control, strength, (*link.evidence, step)))
    return links


def _onward_links(nist_links: list[Link], catalogue: Catalogue) -> list[Link]:
    """FedRAMP baselines (GSA membership: the NIST link's strength) and HIPAA standards (the SP
    800-66r2 crosswalk: at most `technique`, it is evidence, not the rule's own word)."""
    crosswalk = load_evidence()["sp800_66"]["controls"]
    links: list[Link] = []
    for link in nist_links:
        for baseline in catalogue.fedramp_baselines.get(link.control, ()):
            step = f"FedRAMP {baseline} baseline selects {link.control}"
            links.append(
                Link(FEDRAMP, f"{baseline}_{link.control}", link.strength, (*link.evidence, step))
            )
        base = link.control.split("(", 1)[0]
        for standard in crosswalk.get(base, ()):
            step = f"NIST SP 800-66r2 maps {base} to HIPAA {standard}"
            strength = _weaker(link.strength, "technique")
            links.append(Link(HIPAA, standard, strength, (*link.evidence, step)))
    return links


def rule_links(rule: RuleFacts, catalogue: Catalogue | None = None) -> tuple[Link, ...]:
    """Every link of the rule to a control, with its strength and evidence."""
    return _links(tuple(rule.tags), rule.source, catalogue or load_catalogue())


# Bounded: a follower reloading changed rules for months must not grow it forever; distinct tag
# sets of one rules set number in the hundreds.
_CACHED_RULES = 8192


@lru_cache(maxsize=_CACHED_RULES)
def _links(tags: tuple[str, ...], source: str, catalogue: Catalogue) -> tuple[Link, ...]:
    links = _explicit_links(tags, catalogue)
    attack = catalogue.frameworks[MITRE]
    mitre = [link for link in links if link.framework == MITRE]
    mitre_ids = {link.control for link in mitre}
    for row in _applicable_rows(tags, source, mitre_ids):
        step = f"falconet row {row.condition}={row.value}: {row.rationale}"
        links += [Link(row.framework, c, row.strength, (step,)) for c in row.controls]
    techniques = [
        link
        for link in mitre
        if (control := attack.control(link.control)) is not None
        and control.kind == "technique"
        and control.active
    ]
    links += _ctid_links(techniques, catalogue)
    links += _onward_links([link for link in links if link.framework == NIST], catalogue)
    return tuple(links)


def best_strengths(links: Iterable[Link]) -> dict[tuple[str, str], str]:
    """(framework, control) -> the strongest strength among its links."""
    best: dict[tuple[str, str], str] = {}
    for link in links:
        key = (link.framework, link.control)
        if key not in best or at_least(link.strength, best[key]):
            best[key] = link.strength
    return best


def rule_controls(
    rule: RuleFacts, catalogue: Catalogue | None = None, strength: str = DEFAULT_STRENGTH
) -> Controls:
    """The controls the rule covers with a link of `strength` or stronger, per framework."""
    catalogue = catalogue or load_catalogue()
    return _controls(tuple(rule.tags), rule.source, catalogue, strength)


@lru_cache(maxsize=_CACHED_RULES)
def _controls(
    tags: tuple[str, ...], source: str, catalogue: Catalogue, strength: str
) -> dict[str, frozenset[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for (framework, control), best in best_strengths(_links(tags, source, catalogue)).items():
        if at_least(best, strength):
            found[framework].add(control)
    return {framework: frozenset(ids) for framework, ids in found.items() if ids}


def framework_strengths(
    links: Iterable[Link], catalogue: Catalogue | None = None
) -> dict[str, str]:
    """Framework -> the strength at which the rule covers the framework as a whole (see the
    module docstring: links to ATT&CK tactics count as `tactic`)."""
    catalogue = catalogue or load_catalogue()
    attack = catalogue.frameworks[MITRE]
    found: dict[str, str] = {}
    for link in links:
        strength = link.strength
        if link.framework == MITRE:
            control = attack.control(link.control)
            if control is None or control.kind == "tactic":
                strength = "tactic"
        if link.framework not in found or at_least(strength, found[link.framework]):
            found[link.framework] = strength
    return found


def rule_frameworks(
    rule: RuleFacts, catalogue: Catalogue | None = None, strength: str = DEFAULT_STRENGTH
) -> set[str]:
    """The frameworks the rule covers as a whole at `strength` or stronger."""
    catalogue = catalogue or load_catalogue()
    best = framework_strengths(rule_links(rule, catalogue), catalogue)
    return {framework for framework, found in best.items() if at_least(found, strength)}


def rows_for(rule: RuleFacts, catalogue: Catalogue | None = None) -> list[MappingRow]:
    """The falconet mapping rows that apply to a rule (to explain why it carries a tag)."""
    catalogue = catalogue or load_catalogue()
    mitre_ids = {
        link.control
        for link in _explicit_links(tuple(rule.tags), catalogue)
        if link.framework == MITRE
    }
    return _applicable_rows(tuple(rule.tags), rule.source, mitre_ids)
