"""Coverage of one framework by a set of rules: per control and per strength, the rules covering
it; totals per strength.

A rule covers control C at strength S when one of the controls it covers with a link of strength S
or stronger (mapping.rule_controls) is C or a sub-control of C, i.e. exactly when `--compliance
FRAMEWORK:C --strength S` would select it. Controls no longer in force (withdrawn, revoked,
deprecated) are not counted; tags naming them are reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from feeds.compliance.catalogue import Catalogue, load_catalogue
from feeds.compliance.mapping import (
    DEFAULT_STRENGTH,
    STRENGTHS,
    at_least,
    best_strengths,
    framework_strengths,
    rule_links,
)
from feeds.compliance.rulesfile import RuleInfo
from feeds.compliance.selection import CONTROL_BOUNDARIES
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
    strength: str | None = None  # the strongest link of the rule to this framework


@dataclass
class ControlCoverage:
    id: str
    title: str
    family: str
    rules: list[str] = field(default_factory=list)  # at the report's strength
    strength: str | None = None  # the strongest link any rule has to it
    # strength -> rules covering it with a link of that strength or stronger
    rules_by_strength: dict[str, list[str]] = field(
        default_factory=lambda: {s: [] for s in STRENGTHS}
    )


@dataclass
class FamilyCoverage:
    id: str
    title: str
    controls: int
    covered: int  # at the report's strength
    covered_by_strength: dict[str, int] = field(default_factory=dict)


@dataclass
class CoverageReport:
    framework: str
    framework_name: str
    framework_version: str
    controls: list[ControlCoverage]
    families: list[FamilyCoverage]
    rules: dict[str, RuleRef]  # every rule mapped to this framework at any strength, by name
    rules_total: int
    unknown_controls: dict[str, list[str]]  # control named by tags but not in catalogue -> rules
    unrecognised_tags: dict[str, dict[str, object]]  # tag -> {reason, rules}
    strength: str = DEFAULT_STRENGTH
    inactive_controls: dict[str, dict[str, object]] = field(default_factory=dict)

    @property
    def covered(self) -> list[ControlCoverage]:
        return [c for c in self.controls if c.rules]

    @property
    def uncovered(self) -> list[ControlCoverage]:
        return [c for c in self.controls if not c.rules]

    def uncovered_at(self, strength: str) -> list[ControlCoverage]:
        return [c for c in self.controls if not c.rules_by_strength[strength]]

    def rules_at(self, strength: str) -> list[RuleRef]:
        """Rules with a link of `strength` or stronger to this framework."""
        return [r for r in self.rules.values() if r.strength and at_least(r.strength, strength)]

    def by_strength(self) -> dict[str, dict[str, object]]:
        total = len(self.controls)
        result: dict[str, dict[str, object]] = {}
        for strength in STRENGTHS:
            covered = total - len(self.uncovered_at(strength))
            result[strength] = {
                "covered": covered,
                "uncovered": total - covered,
                "coverage_percent": round(100 * covered / total, 1) if total else 0.0,
                "rules_mapped": len(self.rules_at(strength)),
            }
        return result

    def totals(self) -> dict[str, object]:
        total = len(self.controls)
        covered = len(self.covered)
        mapped = self.rules_at(self.strength)
        return {
            "strength": self.strength,
            "controls": total,
            "covered": covered,
            "uncovered": total - covered,
            "coverage_percent": round(100 * covered / total, 1) if total else 0.0,
            "rules": self.rules_total,
            "rules_mapped": len(mapped),
            "rules_mapped_enabled": sum(1 for r in mapped if r.enabled),
            "by_strength": self.by_strength(),
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
            "uncovered_by_strength": {s: [c.id for c in self.uncovered_at(s)] for s in STRENGTHS},
            "rules": {name: asdict(ref) for name, ref in self.rules.items()},
            "unknown_controls": self.unknown_controls,
            "inactive_controls": self.inactive_controls,
            "unrecognised_tags": self.unrecognised_tags,
        }


def _rule_ref(
    rule: RuleInfo, catalogue: Catalogue, event_types: dict[str, list[str]], strength: str
) -> RuleRef:
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
        strength,
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


def _ancestors(control_id: str) -> list[str]:
    """`control_id` and every id it is a sub-control of (whole components), lower-cased."""
    lowered = control_id.lower()
    found = [lowered]
    found += [lowered[:i] for i, char in enumerate(lowered) if i and char in CONTROL_BOUNDARIES]
    return found


def build_report(
    rules: Sequence[RuleInfo],
    framework_name: str,
    catalogue: Catalogue | None = None,
    event_types: dict[str, list[str]] | None = None,
    strength: str = DEFAULT_STRENGTH,
) -> CoverageReport:
    """`event_types`: rule name -> the evt.type values of its compiled condition, when known;
    `strength`: the minimum link strength of the headline figures (all strengths are counted)."""
    catalogue = catalogue or load_catalogue()
    framework = catalogue.framework(framework_name)
    controls = [
        ControlCoverage(c.id, c.title, c.family) for c in framework.controls.values() if c.active
    ]
    by_id = {c.id.lower(): c for c in controls}
    mapped: dict[str, RuleRef] = {}
    unknown: dict[str, list[str]] = {}
    inactive: dict[str, dict[str, object]] = {}
    for rule in rules:
        links = rule_links(rule, catalogue)
        best = {
            control: found
            for (fw, control), found in best_strengths(links).items()
            if fw == framework.id
        }
        if not best:
            continue
        strongest = framework_strengths(links, catalogue)[framework.id]
        mapped[rule.name] = _rule_ref(rule, catalogue, event_types or {}, strongest)
        # Each catalogue control this rule covers, at the strongest of the links reaching it.
        reached: dict[str, str] = {}
        for control_id, found in best.items():
            for ancestor in _ancestors(control_id):
                if ancestor in by_id:
                    previous = reached.get(ancestor)
                    if previous is None or at_least(found, previous):
                        reached[ancestor] = found
            entry = framework.control(control_id)
            if entry is None:
                unknown.setdefault(control_id, []).append(rule.name)
            elif not entry.active:
                flagged = inactive.setdefault(
                    control_id,
                    {"status": entry.status, "replaced_by": entry.replaced_by, "rules": []},
                )
                flagged["rules"].append(rule.name)  # type: ignore[union-attr]
        for key, found in reached.items():
            coverage = by_id[key]
            for level in STRENGTHS[STRENGTHS.index(found) :]:
                coverage.rules_by_strength[level].append(rule.name)
            if coverage.strength is None or at_least(found, coverage.strength):
                coverage.strength = found
    for coverage in controls:
        coverage.rules = list(coverage.rules_by_strength[strength])
    families = [
        FamilyCoverage(
            family_id,
            title,
            sum(1 for c in controls if c.family == family_id),
            sum(1 for c in controls if c.family == family_id and c.rules),
            {
                s: sum(1 for c in controls if c.family == family_id and c.rules_by_strength[s])
                for s in STRENGTHS
            },
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
        strength,
        inactive,
    )
