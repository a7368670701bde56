"""`falconet rules validate|describe|list|schema`: Falco's `-V` and `-L` for rules files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import Output

FilesArgument = Annotated[
    list[str], typer.Argument(help="Rules files or directories, loaded in order.")
]


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    group = groups["rules"]
    group.command("validate")(validate)
    group.command("describe")(describe)
    group.command("list")(list_rules)
    group.command("schema")(schema)


def _check_output(output: str) -> None:
    if output not in ("text", "json"):
        raise typer.BadParameter(f"unknown output format {output!r}: use text or json")


def validate(files: FilesArgument, output: Output = "text") -> None:
    """Validate rules files as `falco -V` does (files accumulate in order).

    Exit status 1 when any file is invalid, 7 when a required plugin is not provided."""
    _check_output(output)
    import sys

    from cli.context import ENV
    from cli.render import emit_json, emit_text, error_line
    from cli.status import ExitStatus
    from engine.loader import validate_rules_files
    from feeds.config import load_config

    cache_dir = Path(load_config(ENV.config_path)["cache.dir"]) / "rules"
    validation = validate_rules_files(files, cache_dir=cache_dir)
    contents = validation.loaded.contents
    if output == "json":
        emit_json(validation.as_json())
    else:
        # Falco prints errors with the summary and sends the details of warnings to stderr.
        summaries = []
        for result in validation.loaded.results:
            if result.successful and result.warnings:
                summaries.append(result.summary())
                sys.stderr.write(result.as_verbose_text(contents) + "\n")
            else:
                summaries.append(result.as_verbose_text(contents))
        emit_text("\n".join(summaries))
    if not validation.loaded.successful:
        raise typer.Exit(int(ExitStatus.ERROR))
    for message in validation.unmet_requirements:
        error_line(message, "install the plugin or a falconet source that provides it")
    if validation.unmet_requirements:
        raise typer.Exit(int(ExitStatus.REQUIREMENT_UNMET))


def describe(
    files: FilesArgument,
    rule: Annotated[str | None, typer.Option("--rule", help="Describe only this rule.")] = None,
    output: Output = "text",
) -> None:
    """Describe loaded rules, macros and lists as `falco -L` does (incl. condition_compiled)."""
    _check_output(output)
    from cli.render import emit_json, emit_text
    from engine.rule_describe import describe_rules_files

    described = describe_rules_files(files, rule)
    if output == "json":
        emit_json(described)
        return
    emit_text(_falco_rules_text(described["rules"]))


def _wrap(text: str, indent: int, width: int) -> str:
    """Falco's wrap_text: words packed into lines of width - indent, continuation indented."""
    out, length = [], 0
    for word in text.split():
        if length + len(word) + 1 <= width - indent:
            length += len(word) + 1
        else:
            out.append("\n" + " " * indent)
            length = len(word) + 1
        out.append(word + " ")
    return "".join(out)


def _falco_rules_text(rules: list[dict]) -> str:
    """`falco -L` text: rule names and wrapped descriptions in two columns."""
    lines = [f"{'Rule':<50} Description", f"{'----':<50} -----------"]
    for described in rules:
        info = described["info"]
        lines.append(f"{info['name']:<50} {_wrap(info['description'], 51, 110)}\n")
    return "\n".join(lines) + "\n"


def list_rules(
    files: FilesArgument,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Only rules with any of these tags.")
    ] = None,
    select: Annotated[
        list[str] | None,
        typer.Option(
            "--select",
            help="falco.yaml `rules:` selection, applied in order: enable:rule=PATTERN "
            "(`*` wildcard), disable:rule=PATTERN, enable:tag=TAG, disable:tag=TAG.",
        ),
    ] = None,
    min_priority: Annotated[
        str, typer.Option("--min-priority", help="Rules less severe are not enabled.")
    ] = "debug",
    output: Output = "text",
) -> None:
    """List the rules of rules files: name, source, priority, enabled, tags, event types.

    ENABLED is what Falco would enable with the same `rules:` selection and `priority:`."""
    _check_output(output)
    from cli.render import emit_json, emit_text, table
    from engine.rule_describe import list_rules_files

    listed = list_rules_files(files, tag or [], select or [], min_priority)
    if output == "json":
        emit_json(listed)
        return
    rows = [
        (
            r["name"],
            r["source"],
            r["priority"],
            "yes" if r["enabled"] else "no",
            ",".join(r["tags"]),
            "all" if r["event_types"] is None else ",".join(r["event_types"]),
        )
        for r in listed
    ]
    emit_text(table(["rule", "source", "priority", "enabled", "tags", "event types"], rows))


def schema() -> None:
    """Print the JSON Schema of Falco rules files."""
    from cli.render import emit_json
    from schemas import load

    emit_json(load("rules"))
