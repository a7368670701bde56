"""`falconet response test|actions`: try response rules on an alert; list the actions."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.options import Output


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    group = typer.Typer(no_args_is_help=True, help="Response actions: rules that act on alerts.")
    group.command("test")(test)
    group.command("actions")(actions)
    root.add_typer(group, name="response")


def _check_output(output: str) -> None:
    if output not in ("text", "json"):
        raise typer.BadParameter(f"unknown output format {output!r}: use text or json")


def test(
    file: Annotated[str, typer.Argument(help="Response rules file (YAML).")],
    alert: Annotated[
        str, typer.Option("--alert", help="Falco JSON alert file (one alert, or JSON lines).")
    ],
    output: Output = "text",
) -> None:
    """Show which actions would run for an alert, with rendered parameters; runs nothing."""
    _check_output(output)
    from cli.render import emit_json, emit_text
    from engine.response.preview import preview_file

    previews = preview_file(file, alert)
    if output == "json":
        emit_json([p.as_dict() for p in previews])
        return
    emit_text(_previews_text(previews))


def _previews_text(previews: list) -> str:  # type: ignore[type-arg]
    import json

    lines: list[str] = []
    for preview in previews:
        lines.append(f"alert: {preview.alert_rule} ({preview.priority}, {preview.source})")
        if not preview.actions:
            lines.append("  no response rule matches")
        for planned in preview.actions:
            mode = " [dry run]" if planned.dry_run else ""
            lines.append(f"  {planned.response_rule} -> {planned.action}{mode}")
            for key, value in planned.parameters.items():
                lines.append(f"      {key}: {json.dumps(value, default=str)}")
            if planned.error:
                lines.append(f"      error: {planned.error}")
    return "\n".join(lines)


def actions(output: Output = "text") -> None:
    """List the registered actions and their parameters."""
    _check_output(output)
    from cli.render import emit_json, emit_text, table
    from engine.response.actions.base import registered_actions

    described = [action.describe() for action in registered_actions()]
    if output == "json":
        emit_json(described)
        return
    blocks = []
    for action in described:
        rows = [
            (
                p["name"],
                p["type"],
                "required" if p["required"] else _default_text(p["default"]),
                p["help"],
            )
            for p in action["parameters"]
        ]
        body = table(("parameter", "type", "default", "description"), rows)
        blocks.append(f"{action['name']}: {action['summary']}\n{_indent(body)}")
    emit_text("\n\n".join(blocks))


def _default_text(value: object) -> str:
    import json

    return "-" if value is None else json.dumps(value)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
