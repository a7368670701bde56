"""Coverage of one framework by a set of rules: per control, the rules covering it; totals.

A rule covers control C when one of the controls it covers (mapping.rule_controls) is C or a
sub-control of C, i.e. exactly when `--compliance FRAMEWORK:C` would select it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from feeds.compliance.catalogue import Catalogue, load_catalogue
from feeds.compliance.mapping import rule_controls
from feeds.compliance.rulesfile import RuleInfo
from feeds.compliance.selection import control_matches
from feeds.compliance.tags import parse_tag


@dataclass(frozen=True)
class RuleRef:
    name: str
    enabled: bool
    source: str
    priority: str | None
    maturity: str | None
    plugins: tuple[str, ...]
    file: str
    # evt.type values the compiled condition needs; ["*"]: any type; None: not compiled.
    event_types: list[str] | None = None


@dataclass
class ControlCoverage:
    id: str
    title: str
    family: str
    rules: list[str] = field(default_factory=list)


@dataclass
class FamilyCoverage:
    id: str
    title: str
    controls: int
    covered: int


@dataclass
class CoverageReport:
    framework: str
    framework_name: str
    framework_version: str
    controls: list[ControlCoverage]
    families: list[FamilyCoverage]
    rules: dict[str, RuleRef]  # every rule mapped to this framework, by name
    rules_total: int
    unknown_controls: dict[str, list[str]]  # control named by tags but not in catalogue -> rules
    unrecognised_tags: dict[str, dict[str, object]]  # tag -> {reason, rules}

    @property
    def covered(self) -> list[ControlCoverage]:
        return [c for c in self.controls if c.rules]

    @property
    def uncovered(self) -> list[ControlCoverage]:
        return [c for c in self.controls if not c.rules]

    def totals(self) -> dict[str, object]:
        total = len(self.controls)
        covered = len(self.covered)
        return {
            "controls": total,
            "covered": covered,
            "uncovered": total - covered,
            "coverage_percent": round(100 * covered / total, 1) if total else 0.0,
            "rules": self.rules_total,
            "rules_mapped": len(self.rules),
            "rules_mapped_enabled": sum(1 for r in self.rules.values() if r.enabled),
        }

    def as_dict(self) -> dict[str, object]:
        return {
            "framework": {
                "id": self.framework,
                "name": self.framework_name,
                "version": self.framework_version,
            },
            "totals": self.totals(),
            "families": [asdict(f) for f in self.families],
            "controls": [asdict(c) for c in self.controls],
            "uncovered": [c.id for c in self.uncovered],
            "rules": {name: asdict(ref) for name, ref in self.rules.items()},
            "unknown_controls": self.unknown_controls,
            "unrecognised_tags": self.unrecognised_tags,
        }


def _rule_ref(rule: RuleInfo, catalogue: Catalogue, event_types: dict[str, list[str]]) -> RuleRef:
    maturity = next(
        (p.control for t in rule.tags if (p := parse_tag(t, catalogue)).kind == "maturity"), None
    )
    return RuleRef(
        rule.name,
        rule.enabled,
        rule.source,
        rule.priority,
        maturity,
        rule.plugins,
        rule.file,
        event_types.get(rule.name),
    )


def _unrecognised_tags(rules: Sequence[RuleInfo], catalogue: Catalogue) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for rule in rules:
        for tag in rule.tags:
            parsed = parse_tag(tag, catalogue)
            if parsed.kind == "unrecognised":
                entry = found.setdefault(tag, {"reason": parsed.reason, "rules": []})
                entry["rules"].append(rule.name)
    return found


def build_report(
    rules: Sequence[RuleInfo],
    framework_name: str,
    catalogue: Catalogue | None = None,
    event_types: dict[str, list[str]] | None = None,
) -> CoverageReport:
    """`event_types`: rule name -> the evt.type values of its compiled condition, when known."""
    catalogue = catalogue or load_catalogue()
    framework = catalogue.framework(framework_name)
    controls = [ControlCoverage(c.id, c.title, c.family) for c in framework.controls.values()]
    mapped: dict[str, RuleRef] = {}
    unknown: dict[str, list[str]] = {}
    for rule in rules:
        covered_ids = rule_controls(rule, catalogue).get(framework.id, set())
        if not covered_ids:
            continue
        mapped[rule.name] = _rule_ref(rule, catalogue, event_types or {})
        for coverage in controls:
            if any(control_matches(c, coverage.id) for c in covered_ids):
                coverage.rules.append(rule.name)
        for control_id in covered_ids:
            if framework.control(control_id) is None:
                unknown.setdefault(control_id, []).append(rule.name)
    families = [
        FamilyCoverage(
            family_id,
            title,
            sum(1 for c in controls if c.family == family_id),
            sum(1 for c in controls if c.family == family_id and c.rules),
        )
        for family_id, title in framework.families.items()
    ]
    return CoverageReport(
        framework.id,
        framework.name,
        framework.version,
        controls,
        [f for f in families if f.controls],
        mapped,
        len(rules),
        unknown,
        _unrecognised_tags(rules, catalogue),
    )
