"""Rule selection with one meaning everywhere (run, install, follow, reports).

Falco's `rules:` enable-by-tag semantics: within one criterion a rule is selected when any of its
tags matches; different criteria combine with AND:
- compliance specs `FRAMEWORK[:CONTROL_PREFIX]` (e.g. `pci-dss`, `pci-dss:10.2`, `nist:AU`), matched
  against the controls the rule covers (its tags plus the mappings, see mapping.py); a prefix
  matches whole id components: `10.2` matches `10.2` and `10.2.1` but not `10.20`;
  only links of the criteria's strength or stronger count (`--strength explicit|technique|tactic`,
  default technique; mapping.py), and a framework without prefix needs a framework-level link;
- `--tag T`: the rule carries tag T (exact, like Falco's `-t`);
- `--maturity LEVEL`: the rule is at least that mature (stable < incubating < sandbox); rules
  without a `maturity_*` tag (plugin rules files carry none) are not filtered by maturity;
- `--min-priority P`: the rule's priority is P or more severe.
Like Falco's `enable: {tag: ...}`, selection ignores `enabled: false` in the rules file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from engine.rule_items import PRIORITIES, parse_priority, priority_rank
from feeds.compliance.catalogue import Catalogue, Framework, load_catalogue
from feeds.compliance.errors import SelectionError
from feeds.compliance.files import write_text_atomically
from feeds.compliance.mapping import (
    DEFAULT_STRENGTH,
    Controls,
    normalise_strength,
    rule_controls,
    rule_frameworks,
)
from feeds.compliance.rulesfile import RuleFacts
from feeds.compliance.tags import MATURITY_LEVELS, parse_tag

SELECTABLE_MATURITY = ("stable", "incubating", "sandbox")

# Characters that end one component of a control id (10.2.1, AC-2(4), High_AC-2).
CONTROL_BOUNDARIES = ".(-_"


@dataclass(frozen=True)
class FrameworkSpec:
    framework: str
    control_prefix: str | None = None

    def __str__(self) -> str:
        return self.framework + (f":{self.control_prefix}" if self.control_prefix else "")


@dataclass(frozen=True)
class SelectionCriteria:
    compliance: tuple[FrameworkSpec, ...] = ()
    tags: tuple[str, ...] = ()
    maturity: str | None = None
    min_priority: str | None = None
    strength: str = DEFAULT_STRENGTH  # minimum strength of a rule -> control link

    def as_dict(self) -> dict[str, object]:
        return {
            "compliance": [str(spec) for spec in self.compliance],
            "strength": self.strength,
            "tags": list(self.tags),
            "maturity": self.maturity,
            "min_priority": self.min_priority,
        }


@dataclass
class Selection:
    criteria: SelectionCriteria
    rules: list[str] = field(default_factory=list)  # selected names, in load order


def control_matches(control: str, prefix: str) -> bool:
    """`prefix` names `control` or one of its parents (whole components, case-insensitive)."""
    control, prefix = control.lower(), prefix.lower()
    if control == prefix:
        return True
    return control.startswith(prefix) and (
        prefix[-1] in CONTROL_BOUNDARIES or control[len(prefix)] in CONTROL_BOUNDARIES
    )


def parse_framework_spec(text: str, catalogue: Catalogue | None = None) -> FrameworkSpec:
    """`pci-dss`, `pci-dss:10.2`: checks the framework and that the prefix names some control."""
    catalogue = catalogue or load_catalogue()
    name, _, prefix = text.partition(":")
    framework = catalogue.framework(name)
    prefix = prefix.strip()
    if prefix and not any(control_matches(c, prefix) for c in framework.controls):
        raise SelectionError(
            f"no {framework.name} control is {prefix!r} or starts with it",
            f"families of {framework.id}: {_family_list(framework)}",
        )
    return FrameworkSpec(framework.id, prefix or None)


def _family_list(framework: Framework) -> str:
    return ", ".join(framework.families)


def normalise_priority(text: str) -> str:
    """Falco's name of a priority (case-insensitive, `info` accepted, as Falco parses it)."""
    name = parse_priority(text.strip())
    if name is None:
        raise SelectionError(f"unknown priority {text!r}", f"use one of: {', '.join(PRIORITIES)}")
    return name


def normalise_maturity(text: str) -> str:
    lowered = text.strip().lower().removeprefix("maturity_")
    if lowered not in SELECTABLE_MATURITY:
        raise SelectionError(
            f"unknown maturity {text!r}", f"use one of: {', '.join(SELECTABLE_MATURITY)}"
        )
    return lowered


def build_criteria(
    framework_spec: str | Sequence[str] | None = None,
    tags: Sequence[str] = (),
    maturity: str | None = None,
    min_priority: str | None = None,
    catalogue: Catalogue | None = None,
    strength: str | None = None,
) -> SelectionCriteria:
    """Validated criteria from user text (raises a ConfigError: exit status `usage`)."""
    specs = [framework_spec] if isinstance(framework_spec, str) else list(framework_spec or ())
    return SelectionCriteria(
        compliance=tuple(parse_framework_spec(s, catalogue) for s in specs),
        tags=tuple(tags),
        maturity=normalise_maturity(maturity) if maturity else None,
        min_priority=normalise_priority(min_priority) if min_priority else None,
        strength=normalise_strength(strength),
    )


def _rule_maturity(rule: RuleFacts, catalogue: Catalogue) -> str | None:
    for tag in rule.tags:
        parsed = parse_tag(tag, catalogue)
        if parsed.kind == "maturity":
            return parsed.control
    return None


def _priority_rank(priority: str | None) -> int:
    """Falco's rank (0 = Emergency); a rule without a valid priority ranks below Debug."""
    name = parse_priority(priority) if priority else None
    return priority_rank(name) if name else len(PRIORITIES)


def rule_is_selected(rule: RuleFacts, criteria: SelectionCriteria, catalogue: Catalogue) -> bool:
    if criteria.tags and not any(tag in rule.tags for tag in criteria.tags):
        return False
    if criteria.min_priority and _priority_rank(rule.priority) > priority_rank(
        criteria.min_priority
    ):
        return False
    if criteria.maturity:
        level = _rule_maturity(rule, catalogue)
        allowed = MATURITY_LEVELS[: MATURITY_LEVELS.index(criteria.maturity) + 1]
        if level is not None and level not in allowed:
            return False
    if criteria.compliance:
        controls = rule_controls(rule, catalogue, criteria.strength)
        frameworks = rule_frameworks(rule, catalogue, criteria.strength)
        return any(_spec_matches(spec, controls, frameworks) for spec in criteria.compliance)
    return True


def _spec_matches(spec: FrameworkSpec, controls: Controls, frameworks: set[str]) -> bool:
    if spec.control_prefix is None:
        return spec.framework in frameworks
    covered = controls.get(spec.framework, set())
    return any(control_matches(control, spec.control_prefix) for control in covered)


def select(rules: Iterable[RuleFacts], criteria: SelectionCriteria) -> Selection:
    catalogue = load_catalogue()
    names = [rule.name for rule in rules if rule_is_selected(rule, criteria, catalogue)]
    return Selection(criteria, names)


def select_rules(
    rules: Iterable[RuleFacts],
    framework_spec: str | Sequence[str] | None = None,
    tags: Sequence[str] = (),
    maturity: str | None = None,
    min_priority: str | None = None,
    strength: str | None = None,
) -> set[str]:
    """Names of the selected rules (the entry point for install, follow and run); `strength`:
    the minimum strength of a rule -> control link (default `technique`)."""
    criteria = build_criteria(framework_spec, tags, maturity, min_priority, strength=strength)
    return set(select(rules, criteria).rules)


def falco_rules_config(names: Iterable[str]) -> list[dict[str, dict[str, str]]]:
    """falco.yaml `rules:` entries enabling exactly these rules (Falco >= 0.38)."""
    return [{"disable": {"rule": "*"}}, *({"enable": {"rule": name}} for name in names)]


def render_selection(selection: Selection) -> str:
    """A Falco configuration fragment (`rules:` only) with the criteria in its header.

    Falco reads it through `config_files:` in falco.yaml; falconet's engine reads the same file.
    """
    criteria = selection.criteria.as_dict()
    header = [
        "# Rule selection generated by falconet (Falco `rules:` config; include it from",
        "# falco.yaml with `config_files: [this file]`). Criteria:",
        *(f"#   {key}: {value}" for key, value in criteria.items() if value),
        f"#   selected: {len(selection.rules)} rules",
    ]
    body = yaml.safe_dump(
        {"rules": falco_rules_config(selection.rules)},
        sort_keys=False,
        default_flow_style=None,
        width=100,
        allow_unicode=True,
    )
    return "\n".join(header) + "\n" + body


def write_selection(path: str | Path, selection: Selection) -> Path:
    """Write the selection file atomically (a reader never sees half a file)."""
    return write_text_atomically(Path(path), render_selection(selection))


def read_selection(path: str | Path) -> list[str]:
    """Rule names a selection file enables (after its `disable: {rule: "*"}`)."""
    data = yaml.safe_load(Path(path).read_text("utf-8")) or {}
    entries = data.get("rules") or []
    return [e["enable"]["rule"] for e in entries if isinstance(e, dict) and "enable" in e]
