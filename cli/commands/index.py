"""`falconet index add|list|remove|update`: falcoctl's index commands."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.options import Output


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    group = groups["index"]
    group.command("add")(add)
    group.command("list")(list_indexes)
    group.command("ls", hidden=True)(list_indexes)
    group.command("remove")(remove)
    group.command("rm", hidden=True)(remove)
    group.command("update")(update)


def _store():  # type: ignore[no-untyped-def]
    from cli.context import ENV
    from feeds.indexes import open_index_store

    return open_index_store(ENV.config_path)


def add(
    name: Annotated[str, typer.Argument(help="Name for the index.")],
    url: Annotated[str, typer.Argument(help="http(s):// URL, file:// URL or path of index.yaml")],
    backend: Annotated[
        str | None, typer.Argument(help="http|https|file (default: from URL)")
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Accept a plain-HTTP index from another machine (anyone on the path can "
            "rewrite its entries and keys).",
        ),
    ] = False,
) -> None:
    """Add an index (fetched now: an index that cannot be read is not added)."""
    from cli.render import emit_text

    source = _store().add(name, url, backend, insecure=insecure)
    emit_text(f"index {source.name} added: {len(source.entries)} entries from {source.url}")


def list_indexes(output: Output = "text") -> None:
    """List the configured indexes with URL, origin, times and entry counts."""
    from cli.render import emit_json, emit_text, table

    sources = _store().load_all()
    rows = [
        {
            "name": s.name,
            "url": s.url,
            "backend": s.backend,
            "origin": s.origin,
            "added": s.added,
            "updated": s.updated,
            "entries": len(s.entries),
            "error": s.error,
        }
        for s in sources
    ]
    if output == "json":
        emit_json(rows)
        return
    emit_text(
        table(
            ["name", "url", "origin", "added", "updated", "entries"],
            [
                (
                    r["name"],
                    r["url"],
                    r["origin"],
                    r["added"],
                    r["updated"],
                    "unavailable" if r["error"] else r["entries"],
                )
                for r in rows
            ],
        )
    )


def remove(names: Annotated[list[str], typer.Argument(help="Index names.")]) -> None:
    """Remove indexes added with `index add`."""
    from cli.render import emit_text

    store = _store()
    for name in names:
        store.remove(name)
        emit_text(f"index {name} removed")


def update(
    names: Annotated[list[str] | None, typer.Argument(help="Index names (default: all)")] = None,
) -> None:
    """Re-fetch indexes now (conditional requests: unchanged indexes cost no download)."""
    from cli.render import emit_text

    for source in _store().update(names or None):
        state = (
            f"unavailable ({source.error})" if source.error else f"{len(source.entries)} entries"
        )
        emit_text(f"index {source.name}: {state}")
