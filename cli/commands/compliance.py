"""`falconet compliance frameworks|controls|tags|overlay|select|explain|report|gaps`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli.options import Output, Strength

if TYPE_CHECKING:
    from feeds.compliance.coverage import CoverageReport

RulesFiles = Annotated[
    list[str], typer.Argument(help="Falco rules files, in load order.", show_default=False)
]
REPORT_FORMATS = ("text", "json", "markdown", "html")


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    group = groups["compliance"]
    group.command("frameworks")(frameworks)
    group.command("controls")(controls)
    group.command("tags")(tags)
    group.command("overlay")(overlay)
    group.command("select")(select)
    group.command("explain")(explain)
    group.command("report")(report)
    group.command("gaps")(gaps)


def frameworks(output: Output = "text") -> None:
    """List the frameworks of the catalogue (ids usable with --compliance and --framework)."""
    from cli.render import emit_json, emit_text, table
    from feeds.compliance.operations import list_frameworks

    rows = list_frameworks()
    if output == "json":
        emit_json(rows)
        return
    emit_text(
        table(
            ["framework", "name", "version", "families", "controls", "inactive", "aliases"],
            [_framework_row(r) for r in rows],
        )
    )


def _framework_row(row: dict[str, object]) -> tuple[object, ...]:
    keys = ("id", "name", "version", "families", "controls", "inactive")
    return (*(row[k] for k in keys), _join(row["aliases"]))


def _join(values: object) -> str:
    return ", ".join(str(v) for v in values) if isinstance(values, list) else str(values)


def controls(
    spec: Annotated[str, typer.Argument(help="FRAMEWORK[:CONTROL_PREFIX], e.g. pci-dss:10.2")],
    output: Output = "text",
) -> None:
    """List the controls of a framework (or those under a control prefix) with their titles."""
    from cli.render import emit_json, emit_text, table
    from feeds.compliance.operations import list_controls

    rows = list_controls(spec)
    if output == "json":
        emit_json(rows)
        return
    emit_text(
        table(
            ["control", "family", "title", "status"],
            [(r["id"], r["family"], r["title"], _status(r)) for r in rows],
        )
    )


def _status(row: dict[str, object]) -> str:
    status = str(row.get("status", ""))
    return status + (f" -> {row['replaced_by']}" if row.get("replaced_by") else "")


def tags(rules_files: RulesFiles, output: Output = "text") -> None:
    """Classify every tag of the rules files; unrecognised framework-like tags say why."""
    from cli.render import emit_json, emit_text, table
    from feeds.compliance.operations import classify_tags

    rows = classify_tags(rules_files)
    if output == "json":
        emit_json(rows)
        return
    emit_text(
        table(
            ["tag", "kind", "framework", "control", "rules", "note"],
            [
                (
                    r["tag"],
                    r["kind"],
                    r.get("framework"),
                    r.get("control"),
                    r["rules"],
                    r.get("reason") or ("" if r.get("known", True) else "not in catalogue"),
                )
                for r in rows
            ],
        )
    )


def explain(
    rules_files: RulesFiles,
    rule: Annotated[str, typer.Option("--rule", help="Name of the rule to explain.")],
    strength: Strength = None,
    output: Output = "text",
) -> None:
    """Why a rule covers its controls: its tags, each mapping row (with its rationale), and
    every link to a control with its strength and evidence."""
    from cli.render import emit_json, emit_text, table
    from feeds.compliance.operations import explain_rule

    facts = explain_rule(rules_files, rule, strength)
    if output == "json":
        emit_json(facts)
        return
    tags = [(t["tag"], t["kind"], t.get("framework"), t.get("control")) for t in facts["tags"]]
    rows = [
        (f"{k}={v}", m["strength"], m["framework"], " ".join(m["controls"]), m["rationale"])
        for m in facts["mappings"]
        for k, v in m["when"].items()
    ]
    links = [
        (link["framework"], link["control"], link["strength"], " -> ".join(link["evidence"]))
        for link in facts["links"]
    ]
    emit_text(
        "\n".join(
            [
                f"{facts['rule']} (source {facts['source']})",
                "",
                table(["tag", "kind", "framework", "control"], tags),
                "",
                table(["when", "strength", "framework", "controls", "rationale"], rows),
                "",
                table(["framework", "control", "strength", "evidence"], links),
                "",
                f"at strength {facts['strength']}, the overlay appends "
                f"{len(facts['overlay_tags'])} tags",
            ]
        )
    )


def overlay(rules_files: RulesFiles, strength: Strength = None) -> None:
    """Print a Falco rules file appending framework tags to the rules (load it after them):
    the tags of the controls each rule covers at --strength or stronger."""
    from cli.render import emit_text
    from feeds.compliance.operations import generate_overlay

    emit_text(generate_overlay(rules_files, strength).text)


def select(
    rules_files: RulesFiles,
    compliance: Annotated[
        list[str] | None,
        typer.Option("--compliance", help="FRAMEWORK[:CONTROL_PREFIX]; repeat for any-of."),
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Rule tag; repeat for any-of.")
    ] = None,
    maturity: Annotated[
        str | None, typer.Option("--maturity", help="stable|incubating|sandbox (at least).")
    ] = None,
    min_priority: Annotated[
        str | None, typer.Option("--min-priority", help="Falco priority, e.g. warning.")
    ] = None,
    write: Annotated[
        str | None,
        typer.Option("--write", help="Write the selection (Falco `rules:` config) to this file."),
    ] = None,
    strength: Strength = None,
    output: Output = "text",
) -> None:
    """Select rules like --compliance/--tag/--maturity/--min-priority/--strength do on install
    and run."""
    from cli.render import emit_json, emit_text
    from feeds.compliance.operations import select_from_files

    selection = select_from_files(
        rules_files, compliance or [], tag or [], maturity, min_priority, write, strength
    )
    if output == "json":
        emit_json({"criteria": selection.criteria.as_dict(), "rules": selection.rules})
        return
    emit_text("\n".join([*selection.rules, f"# {len(selection.rules)} rules selected"]))


def report(
    rules_files: RulesFiles,
    framework: Annotated[
        str, typer.Option("--framework", "-f", help="Framework id or alias (see `frameworks`).")
    ],
    strength: Strength = None,
    output: Output = "text",
) -> None:
    """Coverage of a framework by the rules: per control, the rules covering it at --strength
    and the strongest link; totals at every strength."""
    from cli.render import emit_json, emit_text

    if output not in REPORT_FORMATS:
        raise typer.BadParameter(f"{output!r}: use one of {', '.join(REPORT_FORMATS)}")
    from feeds.compliance.operations import coverage_report

    result = coverage_report(rules_files, framework, strength)
    if output == "json":
        emit_json(result.as_dict())
    elif output == "markdown":
        from feeds.compliance.report_markdown import render_markdown

        emit_text(render_markdown(result))
    elif output == "html":
        from feeds.compliance.report_html import render_html

        emit_text(render_html(result))
    else:
        emit_text(_report_text(result))


def _report_text(result: CoverageReport) -> str:
    from cli.render import table

    totals = result.totals()
    head = (
        f"{result.framework_name} {result.framework_version}: {totals['covered']}/"
        f"{totals['controls']} controls covered ({totals['coverage_percent']}%) at strength "
        f"{result.strength}, {totals['rules_mapped']} of {totals['rules']} rules mapped"
    )
    per_strength = [
        (level, f["covered"], f["uncovered"], f"{f['coverage_percent']}%", f["rules_mapped"])
        for level, f in result.by_strength().items()
    ]
    rows = [
        (c.id, c.title[:50], c.strength or "-", len(c.rules), _first_rules(c.rules))
        for c in result.controls
    ]
    parts = [
        head,
        "",
        table(["strength", "covered", "uncovered", "coverage", "rules"], per_strength),
        "",
        table(["control", "title", "best", "rules", "covered by"], rows),
    ]
    findings = [f"unknown control {k}: {', '.join(v)}" for k, v in result.unknown_controls.items()]
    findings += [
        f"{info['status']} control {k}"
        + (f" (replaced by {info['replaced_by']})" if info.get("replaced_by") else "")
        + f": {', '.join(info['rules'])}"  # type: ignore[arg-type]
        for k, info in result.inactive_controls.items()
    ]
    findings += [
        f"unrecognised tag {tag} ({len(info['rules'])} rules): {info['reason']}"
        for tag, info in result.unrecognised_tags.items()
    ]
    if findings:
        parts += ["", *findings]
    return "\n".join(parts)


def _first_rules(names: list[str], limit: int = 2) -> str:
    if not names:
        return "-"
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit})" if len(names) > limit else "")


def gaps(rules_files: RulesFiles, output: Output = "text") -> None:
    """Per framework and strength: rules selected, controls covered, controls no rule covers."""
    from cli.render import emit_json, emit_text, table
    from feeds.compliance.operations import coverage_summary

    rows = coverage_summary(rules_files)
    if output == "json":
        emit_json(rows)
        return
    emit_text(
        table(
            ["framework", "strength", "rules selected", "controls covered", "uncovered"],
            [
                (
                    r["framework"],
                    r["strength"],
                    f"{r['rules_selected']}/{r['rules']}",
                    f"{r['controls_covered']}/{r['controls']}",
                    _first_rules(list(r["uncovered"]), 4),  # type: ignore[call-overload]
                )
                for r in rows
            ],
        )
    )
