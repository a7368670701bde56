"""`falconet config show`: the effective configuration and where each value came from."""

from __future__ import annotations

from typing import Annotated

import typer


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    groups["config"].command("show")(show)


def show(
    output: Annotated[str, typer.Option("-o", "--output", help="text|json")] = "text",
) -> None:
    """Print every setting with its value and origin (default, file, env or flag)."""
    import json

    from cli.context import ENV
    from cli.render import emit_json, emit_text, table
    from feeds.config import load_config

    config = load_config(ENV.config_path)
    rows = config.as_rows()
    if output == "json":
        emit_json(
            {
                "file": str(config.file) if config.file else None,
                "looked_for": [{"path": p, "status": status} for p, status in config.looked_for],
                "settings": [{"key": k, "value": v, "origin": o} for k, v, o in rows],
            }
        )
        return
    emit_text(f"config file: {config.file or '(none: defaults and environment only)'}")
    for path, status in config.looked_for:
        emit_text(f"  looked for {path}: {status}")
    emit_text(
        table(
            ["key", "value", "origin"],
            [(k, json.dumps(v) if not isinstance(v, str) else v, o) for k, v, o in rows],
        )
    )
