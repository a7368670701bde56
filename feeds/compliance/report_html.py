"""Coverage report as one self-contained HTML page: inline CSS and SVG, no script, no network.

The chart is one SVG bar per control family (covered / total controls). Elements carry `id`s and
`data-*` attributes so the page can be checked by machines as well as read by people.
"""

from __future__ import annotations

from html import escape

from feeds.compliance.coverage import CoverageReport, FamilyCoverage

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


def _bar(index: int, family: FamilyCoverage) -> str:
    y = index * _ROW + 4
    share = family.covered / family.controls if family.controls else 0.0
    covered_width = round(_BAR_WIDTH * share, 1)
    title = escape(f"{family.id} {family.title}: {family.covered}/{family.controls}")
    return (
        f'<g class="family-bar" data-family="{escape(family.id)}" '
        f'data-covered="{family.covered}" data-controls="{family.controls}">'
        f"<title>{title}</title>"
        f'<text x="0" y="{y + 13}">{escape(_label(family))}</text>'
        f'<rect class="bar-total" x="{_LABEL_WIDTH}" y="{y}" width="{_BAR_WIDTH}" '
        f'height="{_BAR_HEIGHT}" fill="#eaeef2"/>'
        f'<rect class="bar-covered" x="{_LABEL_WIDTH}" y="{y}" width="{covered_width}" '
        f'height="{_BAR_HEIGHT}" fill="#2da44e"/>'
        f'<text x="{_LABEL_WIDTH + _BAR_WIDTH + 8}" y="{y + 13}">'
        f"{family.covered}/{family.controls}</text></g>"
    )


def _chart(report: CoverageReport) -> str:
    height = len(report.families) * _ROW + 8
    width = _LABEL_WIDTH + _BAR_WIDTH + 60
    bars = "".join(_bar(i, f) for i, f in enumerate(report.families))
    return (
        f'<svg id="family-chart" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="Coverage per control family" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">{bars}</svg>'
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
            f'data-rules="{len(control.rules)}"><td>{escape(control.id)}</td>'
            f"<td>{escape(control.title)}</td><td>{_rule_cell(report, control.rules)}</td></tr>"
        )
    return "".join(rows)


def _findings(report: CoverageReport) -> str:
    items = [
        f"<li><code>{escape(control)}</code> is not in the catalogue "
        f"({escape(', '.join(rules))})</li>"
        for control, rules in report.unknown_controls.items()
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
        f"<h2>Coverage per control family</h2>{_chart(report)}"
        f'<h2>Controls</h2><table id="controls"><thead><tr><th>Control</th><th>Title</th>'
        f"<th>Rules</th></tr></thead><tbody>{_control_rows(report)}</tbody></table>"
        f"{_findings(report)}</body></html>\n"
    )
