"""`falconet ui`: the web UI and alert store on a server of its own (docs/ui.md)."""

from __future__ import annotations

from typing import Annotated

import typer


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    root.command("ui")(ui)


def ui(
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT to serve on (loopback unless told).")
    ] = "127.0.0.1:8766",
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Alert store: a SQLite file, or postgresql://USER@HOST:PORT/DB for a fleet "
            "(default: <state dir>/ui/alerts.db).",
        ),
    ] = None,
    auth_file: Annotated[
        str | None,
        typer.Option(
            "--auth-file", help="Ingest credentials: bearer tokens / USER:PASSWORD lines."
        ),
    ] = None,
    login_file: Annotated[
        str | None,
        typer.Option("--login-file", help="UI login: USER:PASSWORD lines (default: no login)."),
    ] = None,
    rules: Annotated[
        list[str] | None,
        typer.Option("-r", "--rules", help="Rules files shown (default: the installed rules)."),
    ] = None,
    retention: Annotated[
        str, typer.Option("--retention", help="Keep alerts this long (e.g. 30d, 12h).")
    ] = "30d",
    max_size_mb: Annotated[
        int, typer.Option("--max-size-mb", help="Keep at most this many MiB of alerts.")
    ] = 1024,
    queue_size: Annotated[
        int, typer.Option("--queue-size", help="Alerts waiting to be stored; beyond: dropped.")
    ] = 50_000,
) -> None:
    """Serve the web UI: alerts (live), feeds, compliance, responses, rules; and the fleet
    ingest (POST /ingest: Falco JSON alerts, /ingest/status: node status)."""
    import sys

    from cli.context import ENV
    from ui.server import UiSettings, serve

    settings = UiSettings(
        listen=listen,
        store=store,
        auth_file=auth_file,
        login_file=login_file,
        rules_files=rules,
        retention=retention,
        max_size_mb=max_size_mb,
        queue_size=queue_size,
        config_path=ENV.config_path,
    )
    serve(settings, lambda url: sys.stderr.write(f"web UI on {url}\n"))
