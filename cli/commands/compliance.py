"""`falconet compliance frameworks|controls|tags|overlay|select|report`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli.options import Output

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
            ["framework", "name", "version", "families", "controls", "aliases"],
            [_framework_row(r) for r in rows],
        )
    )


def _framework_row(row: dict[str, object]) -> tuple[object, ...]:
    keys = ("id", "name", "version", "families", "controls")
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
        table(["control", "family", "title"], [(r["id"], r["family"], r["title"]) for r in rows])
    )


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
    rule: Annotated[str, typer.Option("--rule", "-r", help="Name of the rule to explain.")],
    output: Output = "text",
) -> None:
    """Why a rule covers its controls: its tags, and each mapping row (with its rationale)."""
    from cli.render import emit_json, emit_text, table
    from feeds.compliance.operations import explain_rule

    facts = explain_rule(rules_files, rule)
    if output == "json":
        emit_json(facts)
        return
    tags = [(t["tag"], t["kind"], t.get("framework"), t.get("control")) for t in facts["tags"]]
    rows = [
        (f"{k}={v}", m["framework"], " ".join(m["controls"]), m["rationale"])
        for m in facts["mappings"]
        for k, v in m["when"].items()
    ]
    emit_text(
        "\n".join(
            [
                f"{facts['rule']} (source {facts['source']})",
                "",
                table(["tag", "kind", "framework", "control"], tags),
                "",
                table(["when", "framework", "controls", "rationale"], rows),
                "",
                f"overlay appends {len(facts['overlay_tags'])} tags",
            ]
        )
    )


def overlay(rules_files: RulesFiles) -> None:
    """Print a Falco rules file appending framework tags to the rules (load it after them)."""
    from cli.render import emit_text
    from feeds.compliance.operations import generate_overlay

    emit_text(generate_overlay(rules_files).text)


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
    output: Output = "text",
) -> None:
    """Select rules like --compliance/--tag/--maturity/--min-priority do on install and run."""
    from cli.render import emit_json, emit_text
    from feeds.compliance.operations import select_from_files

    selection = select_from_files(
        rules_files, compliance or [], tag or [], maturity, min_priority, write
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
    output: Output = "text",
) -> None:
    """Coverage of a framework by the rules: per control, the rules covering it; totals."""
    from cli.render import emit_json, emit_text

    if output not in REPORT_FORMATS:
        raise typer.BadParameter(f"{output!r}: use one of {', '.join(REPORT_FORMATS)}")
    from feeds.compliance.operations import coverage_report

    result = coverage_report(rules_files, framework)
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
        f"{totals['controls']} controls covered ({totals['coverage_percent']}%), "
        f"{totals['rules_mapped']} of {totals['rules']} rules mapped"
    )
    rows = [(c.id, c.title[:50], len(c.rules), _first_rules(c.rules)) for c in result.controls]
    parts = [head, "", table(["control", "title", "rules", "covered by"], rows)]
    findings = [f"unknown control {k}: {', '.join(v)}" for k, v in result.unknown_controls.items()]
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
