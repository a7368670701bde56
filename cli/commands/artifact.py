"""`falconet artifact ...`: falcoctl's artifact commands plus installed/uninstall/mirror."""

from __future__ import annotations

from typing import Annotated

import typer

Output = Annotated[str, typer.Option("-o", "--output", help="text|json")]
TypeFilter = Annotated[str | None, typer.Option("--type", help="rulesfile|plugin|asset")]


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    group = groups["artifact"]
    group.command("search")(search)
    group.command("list")(list_entries)
    group.command("ls", hidden=True)(list_entries)


def _entry_rows(entries: list) -> list[dict]:  # type: ignore[type-arg]
    return [
        {
            "index": e.index,
            "name": e.name,
            "type": e.type,
            "registry": e.registry,
            "repository": e.repository,
            "description": e.description,
            "compliance": list(e.compliance),
        }
        for e in entries
    ]


def _render_entries(entries: list, output: str) -> None:  # type: ignore[type-arg]
    from cli.render import emit_json, emit_text, table

    rows = _entry_rows(entries)
    if output == "json":
        emit_json(rows)
        return
    emit_text(
        table(
            ["index", "artifact", "type", "registry", "repository"],
            [(r["index"], r["name"], r["type"], r["registry"], r["repository"]) for r in rows],
        )
    )


def search(
    keywords: Annotated[list[str], typer.Argument(help="Words to look for.")],
    artifact_type: TypeFilter = None,
    min_score: Annotated[float, typer.Option("--min-score", help="Name similarity (0,1].")] = 0.65,
    compliance: Annotated[
        str | None,
        typer.Option("--compliance", help="Only entries covering this framework (e.g. hipaa)."),
    ] = None,
    output: Output = "text",
) -> None:
    """Search the indexes by name similarity and keywords (falcoctl's algorithm)."""
    from cli.context import ENV
    from feeds.context import FeedsContext
    from feeds.indexes import search as search_entries

    if not 0 < min_score <= 1:
        raise typer.BadParameter("must be in (0, 1]", param_hint="--min-score")
    context = FeedsContext.load(ENV.config_path)
    _render_entries(
        search_entries(context.indexes.entries(), keywords, min_score, artifact_type, compliance),
        output,
    )


def list_entries(
    artifact_type: TypeFilter = None,
    index: Annotated[str | None, typer.Option("--index", help="Only this index.")] = None,
    output: Output = "text",
) -> None:
    """List every artifact of the configured indexes."""
    from cli.context import ENV
    from feeds.context import FeedsContext

    context = FeedsContext.load(ENV.config_path)
    entries = [
        e
        for e in context.indexes.entries()
        if (not artifact_type or e.type == artifact_type) and (not index or e.index == index)
    ]
    _render_entries(entries, output)
