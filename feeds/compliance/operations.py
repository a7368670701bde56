"""What the commands (and the install/follow/run flows) call: one function per operation.

Each takes plain arguments (paths, names), returns a value, raises typed errors; no printing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from feeds.compliance.catalogue import load_catalogue
from feeds.compliance.coverage import CoverageReport, build_report
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


@dataclass
class Overlay:
    text: str
    rules: int  # rules read
    entries: int  # rules that gain tags
    warnings: list[str]


def list_frameworks() -> list[dict[str, object]]:
    return [
        {
            "id": f.id,
            "name": f.name,
            "version": f.version,
            "families": len(f.families),
            "controls": len(f.controls),
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
        {"id": c.id, "family": c.family, "title": c.title}
        for c in framework.controls.values()
        if parsed.control_prefix is None or control_matches(c.id, parsed.control_prefix)
    ]


def generate_overlay(paths: Sequence[str | Path]) -> Overlay:
    read = read_rules(paths)
    entries = overlay_entries(read.rules)
    text = render_overlay(entries, [str(p) for p in paths])
    return Overlay(text, len(read.rules), len(entries), read.warnings)


def coverage_report(
    paths: Sequence[str | Path], framework: str
) -> tuple[CoverageReport, list[str]]:
    """The coverage report and the reader's warnings."""
    catalogue = load_catalogue()
    catalogue.framework(framework)  # an unknown framework fails before any file is read
    read = read_rules(paths)
    return build_report(read.rules, framework, catalogue), read.warnings


def select_from_files(
    paths: Sequence[str | Path],
    compliance: Sequence[str] = (),
    tags: Sequence[str] = (),
    maturity: str | None = None,
    min_priority: str | None = None,
    write_to: str | Path | None = None,
) -> tuple[Selection, list[str]]:
    """Select rules of the files; with `write_to`, also write the selection file."""
    criteria = build_criteria(compliance, tags, maturity, min_priority)
    read = read_rules(paths)
    selection = select(read.rules, criteria)
    if write_to is not None:
        write_selection(write_to, selection)
    return selection, read.warnings


def classify_tags(paths: Sequence[str | Path]) -> list[dict[str, object]]:
    """Every distinct tag of the files: its kind, (framework, control), rule count, reason."""
    catalogue = load_catalogue()
    counts: Counter[str] = Counter()
    for rule in read_rules(paths).rules:
        counts.update(set(rule.tags))
    return [{**parse_tag(tag, catalogue).as_dict(), "rules": counts[tag]} for tag in sorted(counts)]
