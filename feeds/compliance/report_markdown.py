"""Coverage report as Markdown (for pull requests, wikis, audit evidence folders)."""

from __future__ import annotations

from feeds.compliance.coverage import CoverageReport
from feeds.compliance.mapping import STRENGTHS


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: CoverageReport) -> str:
    totals = report.totals()
    lines = [
        f"# {report.framework_name} {report.framework_version}: rule coverage",
        "",
        f"- Controls: **{totals['controls']}**, covered: **{totals['covered']}** "
        f"({totals['coverage_percent']}%), uncovered: **{totals['uncovered']}**",
        f"- Rules read: {totals['rules']}; mapped to {report.framework_name}: "
        f"{totals['rules_mapped']} ({totals['rules_mapped_enabled']} enabled)",
        f"- Strength: **{report.strength}** (links of this strength or stronger count; "
        "explicit: a rule tag names the control; technique: published evidence from the rule's "
        "ATT&CK technique; tactic: generic monitoring through the tactic)",
        "",
        "## Coverage per strength",
        "",
        "| Strength | Covered | Uncovered | Coverage | Rules mapped |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {level} | {f['covered']} | {f['uncovered']} | {f['coverage_percent']}% "
            f"| {f['rules_mapped']} |"
            for level, f in report.by_strength().items()
        ),
        "",
        "## Coverage by family",
        "",
        "| Family | Title | Covered | Controls |",
        "|---|---|---:|---:|",
    ]
    lines += [
        f"| {_cell(f.id)} | {_cell(f.title)} | {f.covered} | {f.controls} |"
        for f in report.families
    ]
    lines += [
        "",
        "## Families per strength",
        "",
        "| Family | " + " | ".join(STRENGTHS) + " | Controls |",
        "|---|" + "---:|" * (len(STRENGTHS) + 1),
    ]
    lines += [
        f"| {_cell(f.id)} | "
        + " | ".join(str(f.covered_by_strength[s]) for s in STRENGTHS)
        + f" | {f.controls} |"
        for f in report.families
    ]
    lines += [
        "",
        "## Controls",
        "",
        "| Control | Title | Rules | Strongest link |",
        "|---|---|---|---|",
    ]
    for control in report.controls:
        names = ", ".join(_rule_label(report, n) for n in control.rules) or "**none**"
        lines.append(
            f"| {_cell(control.id)} | {_cell(control.title)} | {_cell(names)} "
            f"| {control.strength or '-'} |"
        )
    if report.unknown_controls:
        lines += ["", "## Tags naming controls not in the catalogue", ""]
        lines += [
            f"- `{control}`: {', '.join(rules)}"
            for control, rules in report.unknown_controls.items()
        ]
    if report.inactive_controls:
        lines += ["", "## Tags naming controls no longer in force", ""]
        lines += [
            f"- `{control}` ({info['status']}"
            + (f", replaced by {info['replaced_by']}" if info.get("replaced_by") else "")
            + f"): {', '.join(info['rules'])}"  # type: ignore[arg-type]
            for control, info in report.inactive_controls.items()
        ]
    if report.unrecognised_tags:
        lines += ["", "## Unrecognised tags", ""]
        lines += [
            f"- `{tag}` ({len(info['rules'])} rules): {info['reason']}"
            for tag, info in report.unrecognised_tags.items()
        ]
    return "\n".join(lines) + "\n"


def _rule_label(report: CoverageReport, name: str) -> str:
    ref = report.rules[name]
    return name if ref.enabled else f"{name} (disabled)"
