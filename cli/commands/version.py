"""`falconet version`: falconet's and its engine's versions (falcoctl has `version`)."""

from __future__ import annotations

from typing import Annotated

import typer


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    root.command("version")(version)


def version(
    output: Annotated[str, typer.Option("-o", "--output", help="text|json")] = "text",
) -> None:
    """Print falconet's version."""
    from importlib.metadata import version as dist_version

    from cli.render import emit_json, emit_text

    info = {"falconet_version": dist_version("falconet")}
    if output == "json":
        emit_json(info)
    else:
        emit_text(f"falconet {info['falconet_version']}")
