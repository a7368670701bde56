"""`falconet index` commands."""

from __future__ import annotations

import typer


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    return None
