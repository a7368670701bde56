"""Coverage report as one self-contained HTML page: inline CSS and SVG, no script, no network.

The chart is one SVG bar per control family (covered / total controls), stacked by strength: the
controls covered by an explicit tag, those added by technique-level evidence, those added only
through generic tactic-level links, each its own colour and pattern (a legend says which). Elements
carry `id`s and `data-*` attributes so the page can be checked by machines as well as read.
"""

from __future__ import annotations

from html import escape

from feeds.compliance.coverage import CoverageReport, FamilyCoverage
from feeds.compliance.mapping import STRENGTHS

# Darker = stronger evidence; tactic-only coverage is also hatched, so it reads without colour.
_COLOURS = {"explicit": "#116329", "technique": "#2da44e", "tactic": "url(#tactic-hatch)"}
_LEGEND = {
    "explicit": "explicit: a rule tag names the control",
    "technique": "technique: published evidence from the rule's ATT&CK technique",
    "tactic": "tactic: generic monitoring through the tactic only",
}
_DEFS = (
    '<defs><pattern id="tactic-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
    'patternTransform="rotate(45)"><rect width="6" height="6" fill="#aceebb"/>'
    '<line x1="0" y1="0" x2="0" y2="6" stroke="#4ac26b" stroke-width="2"/></pattern></defs>'
)

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1d232a}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.15rem;margin-top:2rem}
.totals{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.totals div{border:1px solid #d0d7de;border-radius:6px;padding:.5rem .9rem;min-width:7rem}
.totals b{display:block;font-size:1.4rem}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #e5e8eb;
padding:.3rem .5rem;text-align:left;vertical-align:top}th{background:#f6f8fa}
tr.uncovered td:first-child{border-left:4px solid #cf222e}
tr.covered td:first-child{border-left:4px solid #1a7f37}
.disabled{color:#6e7781}.muted{color:#6e7781}ul{margin:0;padding-left:1.1rem}
svg text{font:12px system-ui,sans-serif;fill:#1d232a}
"""

_BAR_HEIGHT = 18
_ROW = 26
_LABEL_WIDTH = 300
_LABEL_CHARS = 44
_BAR_WIDTH = 420


def _label(family: FamilyCoverage) -> str:
    label = f"{family.id} {family.title}" if family.title != family.id else family.id
    return label if len(label) <= _LABEL_CHARS else label[: _LABEL_CHARS - 1] + "…"


def _segments(family: FamilyCoverage, y: int) -> str:
    """One rect per strength: the controls that strength adds to the stronger ones."""
    parts, x, before = [], float(_LABEL_WIDTH), 0
    for strength in STRENGTHS:
        cumulative = family.covered_by_strength.get(strength, 0)
        added = cumulative - before
        width = round(_BAR_WIDTH * added / family.controls, 1) if family.controls else 0.0
        parts.append(
            f'<rect class="bar-covered bar-{strength}" data-strength="{strength}" '
            f'data-added="{added}" x="{round(x, 1)}" y="{y}" width="{width}" '
            f'height="{_BAR_HEIGHT}" fill="{_COLOURS[strength]}"/>'
        )
        x += width
        before = cumulative
    return "".join(parts)


def _bar(index: int, family: FamilyCoverage) -> str:
    y = index * _ROW + 4
    by_strength = " ".join(f"{s} {family.covered_by_strength.get(s, 0)}" for s in STRENGTHS)
    title = escape(
        f"{family.id} {family.title}: {family.covered}/{family.controls} ({by_strength})"
    )
    counts = "".join(
        f' data-covered-{s}="{family.covered_by_strength.get(s, 0)}"' for s in STRENGTHS
    )
    return (
        f'<g class="family-bar" data-family="{escape(family.id)}" '
        f'data-covered="{family.covered}" data-controls="{family.controls}"{counts}>'
        f"<title>{title}</title>"
        f'<text x="0" y="{y + 13}">{escape(_label(family))}</text>'
        f'<rect class="bar-total" x="{_LABEL_WIDTH}" y="{y}" width="{_BAR_WIDTH}" '
        f'height="{_BAR_HEIGHT}" fill="#eaeef2"/>'
        f"{_segments(family, y)}"
        f'<text x="{_LABEL_WIDTH + _BAR_WIDTH + 8}" y="{y + 13}">'
        f"{family.covered}/{family.controls}</text></g>"
    )


def _legend(y: int) -> str:
    items = []
    for i, strength in enumerate(STRENGTHS):
        x = i * 250
        items.append(
            f'<g class="legend" data-strength="{strength}">'
            f'<rect x="{x}" y="{y}" width="14" height="14" fill="{_COLOURS[strength]}"/>'
            f'<text x="{x + 20}" y="{y + 12}">{escape(_LEGEND[strength].split(":")[0])}</text>'
            f"<title>{escape(_LEGEND[strength])}</title></g>"
        )
    return "".join(items)


def _chart(report: CoverageReport) -> str:
    height = len(report.families) * _ROW + 8 + _ROW
    width = _LABEL_WIDTH + _BAR_WIDTH + 60
    bars = "".join(_bar(i, f) for i, f in enumerate(report.families))
    legend = _legend(len(report.families) * _ROW + 12)
    return (
        f'<svg id="family-chart" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="Coverage per control family and strength" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">{_DEFS}{bars}{legend}</svg>'
    )


def _strength_table(report: CoverageReport) -> str:
    rows = "".join(
        f'<tr class="strength" data-strength="{level}" data-covered="{f["covered"]}" '
        f'data-rules="{f["rules_mapped"]}"><td>{level}</td><td>{f["covered"]}</td>'
        f"<td>{f['uncovered']}</td><td>{f['coverage_percent']}%</td>"
        f"<td>{f['rules_mapped']}</td><td>{escape(_LEGEND[level])}</td></tr>"
        for level, f in report.by_strength().items()
    )
    return (
        '<table id="strengths"><thead><tr><th>Strength</th><th>Covered</th><th>Uncovered</th>'
        "<th>Coverage</th><th>Rules mapped</th><th>Meaning</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _totals(report: CoverageReport) -> str:
    totals = report.totals()
    cells = [
        ("controls", "controls"),
        ("covered", "covered"),
        ("uncovered", "uncovered"),
        ("coverage_percent", "coverage %"),
        ("rules_mapped", "rules mapped"),
    ]
    return (
        '<div class="totals">'
        + "".join(
            f'<div><b id="total-{key.replace("_", "-")}">{totals[key]}</b>{label}</div>'
            for key, label in cells
        )
        + "</div>"
    )


def _event_types_note(event_types: list[str] | None) -> str:
    if not event_types or event_types == ["*"]:
        return ""
    shown = " ".join(event_types[:4]) + (" …" if len(event_types) > 4 else "")
    return f", evt.type: {shown}"


def _rule_cell(report: CoverageReport, names: list[str]) -> str:
    if not names:
        return '<span class="muted">no rule</span>'
    parts = []
    for name in names:
        ref = report.rules[name]
        css = "" if ref.enabled else ' class="disabled"'
        detail = f"{ref.source}, {ref.priority or '-'}{_event_types_note(ref.event_types)}"
        detail += "" if ref.enabled else ", disabled"
        parts.append(f'<li{css}>{escape(name)} <span class="muted">({escape(detail)})</span></li>')
    return "<ul>" + "".join(parts) + "</ul>"


def _control_rows(report: CoverageReport) -> str:
    rows = []
    for control in report.controls:
        state = "covered" if control.rules else "uncovered"
        rows.append(
            f'<tr class="control {state}" data-control="{escape(control.id)}" '
            f'data-rules="{len(control.rules)}" data-strength="{control.strength or ""}">'
            f"<td>{escape(control.id)}</td><td>{escape(control.title)}</td>"
            f"<td>{control.strength or '-'}</td><td>{_rule_cell(report, control.rules)}</td></tr>"
        )
    return "".join(rows)


def _findings(report: CoverageReport) -> str:
    items = [
        f"<li><code>{escape(control)}</code> is not in the catalogue "
        f"({escape(', '.join(rules))})</li>"
        for control, rules in report.unknown_controls.items()
    ]
    items += [
        f"<li><code>{escape(control)}</code> is {escape(str(info['status']))} "
        f"({escape(', '.join(info['rules']))})</li>"  # type: ignore[arg-type]
        for control, info in report.inactive_controls.items()
    ]
    items += [
        f"<li><code>{escape(tag)}</code>: {escape(str(info['reason']))} "
        f"({len(info['rules'])} rules)</li>"
        for tag, info in report.unrecognised_tags.items()
    ]
    if not items:
        return ""
    return "<h2>Tag findings</h2><ul>" + "".join(items) + "</ul>"


def render_html(report: CoverageReport) -> str:
    title = escape(f"{report.framework_name} {report.framework_version}: rule coverage")
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_CSS}</style></head><body>"
        f'<h1 id="report-title">{title}</h1>'
        f'<p class="muted">Generated by falconet compliance report.</p>'
        f"{_totals(report)}"
        f'<p class="muted">Strength <b id="report-strength">{escape(report.strength)}</b>: '
        "the totals and the rules per control count links of this strength or stronger.</p>"
        f"<h2>Coverage per strength</h2>{_strength_table(report)}"
        f"<h2>Coverage per control family</h2>{_chart(report)}"
        f'<h2>Controls</h2><table id="controls"><thead><tr><th>Control</th><th>Title</th>'
        f"<th>Strongest link</th><th>Rules</th></tr></thead>"
        f"<tbody>{_control_rows(report)}</tbody></table>"
        f"{_findings(report)}</body></html>\n"
    )
