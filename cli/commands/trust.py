"""`falconet trust show|update|reset`: the Sigstore trusted root for keyless signatures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Output = Annotated[str, typer.Option("-o", "--output", help="text|json")]


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    groups["trust"].command("show")(show)
    groups["trust"].command("update")(update)
    groups["trust"].command("reset")(reset)


def _config():  # type: ignore[no-untyped-def]
    from cli.context import ENV
    from feeds.config import load_config

    return load_config(ENV.config_path)


def _render(summary: dict, title: str) -> str:  # type: ignore[type-arg]
    lines = [title, f"  sha256: {summary['sha256']}"]
    for kind, label in (("certificate_authorities", "Fulcio CA"), ("tlogs", "Rekor log"),
                        ("ctlogs", "CT log")):  # fmt: skip
        for item in summary[kind]:
            until = item["end"] or "open"
            lines.append(f"  {label:9}  {item['url']}  valid {item['start']} .. {until}")
    return "\n".join(lines)


def show(output: Output = "text") -> None:
    """Show the trusted root keyless verification uses, and each key's validity window."""
    from cli.render import emit_json, emit_text
    from feeds.trust import current_trust_root

    root = current_trust_root(_config())
    if output == "json":
        emit_json(root.summary())
        return
    emit_text(_render(root.summary(), f"Trusted root: {root.source}"))


def update(
    source: Annotated[
        Path, typer.Option("--from", help="A Sigstore trusted_root.json (root-signing's).")
    ],
    output: Output = "text",
) -> None:
    """Install a trusted root from a file (offline; no TUF fetch)."""
    from cli.render import emit_json, emit_text
    from feeds.trust import update_trust_root

    change = update_trust_root(_config(), source)
    if output == "json":
        emit_json(change.to_json())
        return
    emit_text(_render(change.root.summary(), f"Trusted root installed at {change.path}"))


def reset(output: Output = "text") -> None:
    """Remove the installed trusted root: the production root embedded in sigstore applies."""
    from cli.render import emit_json, emit_text
    from feeds.trust import reset_trust_root

    removed = reset_trust_root(_config())
    if output == "json":
        emit_json({"removed": str(removed) if removed else None})
        return
    emit_text(f"Removed {removed}" if removed else "No installed trusted root; nothing to do")
