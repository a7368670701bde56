"""What the commands (and the install/follow/run flows) call: one function per operation.

Each takes plain arguments (paths, names), returns a value, raises typed errors; no printing.
"""

from __future__ import annotations

import difflib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from feeds.compliance.catalogue import load_catalogue
from feeds.compliance.coverage import CoverageReport, build_report
from feeds.compliance.files import write_text_atomically
from feeds.compliance.mapping import STRENGTHS, normalise_strength
from feeds.compliance.overlay import overlay_entries, render_overlay
from feeds.compliance.rulesfile import read_rules
from feeds.compliance.selection import (
    Selection,
    build_criteria,
    control_matches,
    parse_framework_spec,
    select,
    write_selection,
)
from feeds.compliance.tags import parse_tag

log = logging.getLogger(__name__)


@dataclass
class Overlay:
    text: str
    rules: int  # rules read
    entries: int  # rules that gain tags


def list_frameworks() -> list[dict[str, object]]:
    return [
        {
            "id": f.id,
            "name": f.name,
            "version": f.version,
            "families": len(f.families),
            "controls": len(f.active_controls),
            "inactive": len(f.controls) - len(f.active_controls),
            "aliases": list(f.aliases),
            "source": f.source,
        }
        for f in load_catalogue().frameworks.values()
    ]


def list_controls(spec: str) -> list[dict[str, object]]:
    """Controls of `FRAMEWORK[:PREFIX]` with their family and title."""
    catalogue = load_catalogue()
    parsed = parse_framework_spec(spec, catalogue)
    framework = catalogue.frameworks[parsed.framework]
    return [
        {
            "id": c.id,
            "family": c.family,
            "title": c.title,
            **({"status": c.status} if not c.active else {}),
            **({"replaced_by": c.replaced_by} if c.replaced_by else {}),
        }
        for c in framework.controls.values()
        if parsed.control_prefix is None or control_matches(c.id, parsed.control_prefix)
    ]


def generate_overlay(paths: Sequence[str | Path], strength: str | None = None) -> Overlay:
    """The overlay for the rules at `strength` (default `technique`)."""
    level = normalise_strength(strength)
    rules = read_rules(paths)
    entries = overlay_entries(rules, strength=level)
    text = render_overlay(entries, [str(p) for p in paths], level)
    return Overlay(text, len(rules), len(entries))


def coverage_report(
    paths: Sequence[str | Path], framework: str, strength: str | None = None
) -> CoverageReport:
    catalogue = load_catalogue()
    catalogue.framework(framework)  # an unknown framework fails before any file is read
    level = normalise_strength(strength)
    rules = read_rules(paths)
    return build_report(rules, framework, catalogue, compiled_event_types(paths), level)


def coverage_summary(paths: Sequence[str | Path]) -> list[dict[str, object]]:
    """Per framework and strength: rules selected (`--compliance F --strength S`), controls
    covered, and the controls no rule covers."""
    catalogue = load_catalogue()
    rules = read_rules(paths)
    rows: list[dict[str, object]] = []
    for framework in catalogue.frameworks:
        report = build_report(rules, framework, catalogue)
        for strength in STRENGTHS:
            figures = report.by_strength()[strength]
            selected = select(rules, build_criteria([framework], strength=strength)).rules
            rows.append(
                {
                    "framework": framework,
                    "strength": strength,
                    "rules": len(rules),
                    "rules_selected": len(selected),
                    "controls": len(report.controls),
                    "controls_covered": figures["covered"],
                    "uncovered": [c.id for c in report.uncovered_at(strength)],
                }
            )
    return rows


def compiled_event_types(paths: Sequence[str | Path]) -> dict[str, list[str]]:
    """Rule name -> evt.type values, from falconet's engine; empty when the files do not compile
    (a coverage report stays useful for rules the engine cannot run yet)."""
    from engine.loader import load_rules_files

    loaded = load_rules_files(paths)
    if not loaded.successful:
        log.warning("rules do not compile; the report shows no event types")
        return {}
    return {
        rule.name: sorted(rule.event_types) if rule.event_types is not None else ["*"]
        for rule in loaded.rules
    }


def select_from_files(
    paths: Sequence[str | Path],
    compliance: Sequence[str] = (),
    tags: Sequence[str] = (),
    maturity: str | None = None,
    min_priority: str | None = None,
    write_to: str | Path | None = None,
    strength: str | None = None,
) -> Selection:
    """Select rules of the files; with `write_to`, also write the selection file."""
    criteria = build_criteria(compliance, tags, maturity, min_priority, strength=strength)
    selection = select(read_rules(paths), criteria)
    if write_to is not None:
        write_selection(write_to, selection)
    return selection


def classify_tags(paths: Sequence[str | Path]) -> list[dict[str, object]]:
    """Every distinct tag of the files: its kind, (framework, control), rule count, reason."""
    catalogue = load_catalogue()
    counts: Counter[str] = Counter()
    for rule in read_rules(paths):
        counts.update(set(rule.tags))
    return [{**parse_tag(tag, catalogue).as_dict(), "rules": counts[tag]} for tag in sorted(counts)]


def frameworks_covered(paths: Sequence[str | Path]) -> list[str]:
    """Ids of the frameworks the rules cover at the default strength (for a push annotation or
    an index `compliance:`)."""
    from feeds.compliance.mapping import rule_frameworks

    catalogue = load_catalogue()
    covered: set[str] = set()
    for rule in read_rules(paths):
        covered.update(rule_frameworks(rule, catalogue))
    return [framework for framework in catalogue.frameworks if framework in covered]


# Rules directories load in name order: the overlay must come after every rules file it extends.
OVERLAY_NAME = "zz-falconet-compliance-overlay.yaml"
# A Falco config fragment, in the config.d directory stock Falco reads (falco.yaml config_files).
SELECTION_NAME = "config.d/falconet-compliance.yaml"


@dataclass
class SelectionFiles:
    overlay: Path  # load after the rules files (Falco rules file)
    selection: Path  # Falco `rules:` config fragment (falco.yaml `config_files:`)
    criteria: dict[str, object]  # for the install state
    rules: list[str]  # selected rule names


def write_selection_files(
    dest_dir: str | Path,
    rules_paths: Sequence[str | Path],
    compliance: Sequence[str] = (),
    tags: Sequence[str] = (),
    maturity: str | None = None,
    min_priority: str | None = None,
    strength: str | None = None,
) -> SelectionFiles:
    """For install/follow: the overlay and the selection file next to the rules, each written
    atomically, both at the selection's strength; criteria are validated before anything is
    written."""
    criteria = build_criteria(compliance, tags, maturity, min_priority, strength=strength)
    rules = read_rules(rules_paths)
    dest = Path(dest_dir)
    overlay = dest / OVERLAY_NAME
    (dest / SELECTION_NAME).parent.mkdir(parents=True, exist_ok=True)
    entries = overlay_entries(rules, strength=criteria.strength)
    overlay_text = render_overlay(entries, [str(p) for p in rules_paths], criteria.strength)
    write_text_atomically(overlay, overlay_text)
    selection = select(rules, criteria)
    selection_path = write_selection(dest / SELECTION_NAME, selection)
    return SelectionFiles(overlay, selection_path, criteria.as_dict(), selection.rules)


def explain_rule(
    paths: Sequence[str | Path], rule_name: str, strength: str | None = None
) -> dict[str, object]:
    """Why a rule covers what it covers: its tags as parsed, each mapping row that applies, and
    every link to a control with its strength and chain of evidence."""
    from feeds.compliance.errors import RuleNotFoundError
    from feeds.compliance.mapping import best_strengths, rows_for, rule_controls, rule_links
    from feeds.compliance.overlay import canonical_tags

    level = normalise_strength(strength)
    catalogue = load_catalogue()
    rules = {rule.name: rule for rule in read_rules(paths)}
    rule = rules.get(rule_name)
    if rule is None:
        close = difflib.get_close_matches(rule_name, list(rules), n=1)
        hint = (
            f"did you mean {close[0]!r}?" if close else "list rule names with `falconet rules list`"
        )
        raise RuleNotFoundError(f"no rule named {rule_name!r} in the given files", hint)
    links = rule_links(rule, catalogue)
    order = {framework: i for i, framework in enumerate(catalogue.frameworks)}
    controls = rule_controls(rule, catalogue, level)
    return {
        "rule": rule.name,
        "source": rule.source,
        "strength": level,
        "tags": [parse_tag(tag, catalogue).as_dict() for tag in rule.tags],
        "mappings": [
            {
                "when": {row.condition: row.value},
                "strength": row.strength,
                "framework": row.framework,
                "controls": list(row.controls),
                "rationale": row.rationale,
            }
            for row in rows_for(rule, catalogue)
        ],
        "links": [
            link.as_dict()
            for link in sorted(
                links,
                key=lambda k: (order[k.framework], STRENGTHS.index(k.strength), k.control),
            )
        ],
        "best": {
            f"{framework}:{control}": found
            for (framework, control), found in best_strengths(links).items()
        },
        "controls": {framework: sorted(ids) for framework, ids in controls.items()},
        "overlay_tags": [
            tag for tag in canonical_tags(controls, catalogue) if tag not in rule.tags
        ],
    }
