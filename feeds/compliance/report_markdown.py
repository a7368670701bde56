"""Coverage report as Markdown (for pull requests, wikis, audit evidence folders)."""

from __future__ import annotations

from feeds.compliance.coverage import CoverageReport


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
    lines += ["", "## Controls", "", "| Control | Title | Rules |", "|---|---|---|"]
    for control in report.controls:
        names = ", ".join(_rule_label(report, n) for n in control.rules) or "**none**"
        lines.append(f"| {_cell(control.id)} | {_cell(control.title)} | {_cell(names)} |")
    if report.unknown_controls:
        lines += ["", "## Tags naming controls not in the catalogue", ""]
        lines += [
            f"- `{control}`: {', '.join(rules)}"
            for control, rules in report.unknown_controls.items()
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
