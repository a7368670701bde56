"""`falconet plugin info`: a native plugin's identity, capabilities, fields, init schema and open
params (Falco's `--plugin-info`)."""

from __future__ import annotations

from typing import Annotated

import typer


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    groups["plugin"].command("info")(info)


def info(
    name: Annotated[
        str, typer.Argument(help="A `plugins:` entry, lib<NAME>.so in the plugins dir, or a path.")
    ],
    output: Annotated[str, typer.Option("-o", "--output", help="text|json")] = "text",
) -> None:
    """Load a plugin, check it as `run` does, and describe it."""
    if output not in ("text", "json"):
        raise typer.BadParameter(f"--output: unknown value {output!r}: use text, json")
    from pathlib import Path

    from cli.context import ENV
    from cli.render import emit_json, emit_text
    from engine.sources.plugin_host import describe_plugin
    from feeds.config import load_config
    from feeds.run_settings import plugin_settings

    configs, _, plugins_dir = plugin_settings(load_config(ENV.config_path))
    described = describe_plugin(name, Path(plugins_dir), configs)
    if output == "json":
        emit_json(described)
        return
    lines = [
        f"Name: {described['name']}",
        f"Version: {described['version']}",
        f"Description: {described['description']}",
        f"Contact: {described['contact']}",
        f"Required API version: {described['required_api_version']}",
        f"Library: {described['library']}",
        f"Capabilities: {', '.join(described['capabilities'])}",
    ]
    if described["event_source"]:
        lines.append(f"Event source: {described['event_source']} (id {described['id']})")
    if described["extract_event_sources"]:
        lines.append(f"Extracts from: {', '.join(described['extract_event_sources'])}")
    if described["fields"]:
        lines.append("Fields:")
        for field in described["fields"]:
            arg = {"none": "", "required": "[ARG]", "optional": "[ARG?]"}[field["arg"]]
            kind = field["type"] + (" list" if field["is_list"] else "")
            lines.append(f"  {field['name']}{arg} ({kind}) {field['desc']}")
    if described["init_schema"] is not None:
        import json

        lines.append("Init config schema: " + json.dumps(described["init_schema"]))
    if described["open_params"]:
        lines.append("Suggested open params:")
        lines += [f"  {p['value']}  {p.get('desc', '')}".rstrip() for p in described["open_params"]]
    emit_text("\n".join(lines))
