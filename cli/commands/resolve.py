"""`artifact resolve`: the plan `install` would carry out (versions, digests, reasons,
actions), resolved against the target engine; nothing is downloaded beyond configs and nothing
is written except, with --write-lock, the lock file."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.options import EngineVersions, Output, PlainHttp, Platform


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    groups["artifact"].command("resolve")(resolve)


def resolve(
    refs: Annotated[
        list[str] | None,
        typer.Argument(
            help="falco-rules@^5, name@~1.2.3, name@'>=1,<2', name@latest-compatible, "
            "name:tag, name@sha256:..., or host/repository[:tag|@range]"
        ),
    ] = None,
    engine_versions: EngineVersions = None,
    pre: Annotated[bool, typer.Option("--pre", help="Allow pre-release versions.")] = False,
    allow_downgrade: Annotated[
        bool, typer.Option("--allow-downgrade", help="Accept replacing a newer installed version.")
    ] = False,
    update: Annotated[
        list[str] | None,
        typer.Option("--update", help="Re-resolve this locked artifact (repeatable)."),
    ] = None,
    lock: Annotated[
        str | None,
        typer.Option(
            "--lock",
            help="Lock file whose versions are kept while they fit "
            "(default: falconet.lock in the state directory).",
        ),
    ] = None,
    platform: Platform = None,
    plain_http: PlainHttp = False,
    ca_file: Annotated[str | None, typer.Option("--ca-file", help="CA bundle for TLS.")] = None,
    locked: Annotated[
        bool,
        typer.Option("--locked", help="Exactly the lock file's digests; no resolving."),
    ] = False,
    write_lock: Annotated[
        bool, typer.Option("--write-lock", help="Write the resolution to the lock file.")
    ] = False,
    output: Output = "text",
) -> None:
    """Show which version of every artifact and dependency an install would pick, and why."""
    from pathlib import Path

    from cli.context import ENV
    from feeds.context import FeedsContext, TransportFlags
    from feeds.install import default_lock_path
    from feeds.planner import PlanOptions, plan_install

    context = FeedsContext.load(
        ENV.config_path, None, TransportFlags(plain_http=plain_http, ca_file=ca_file)
    )
    lock_path = Path(lock) if lock else default_lock_path(context)
    if locked:
        from feeds.planner import locked_plan

        plan = locked_plan(context, lock_path, refs or [], allow_downgrade)
        _render(plan, output, f"lock file {lock_path}")
        plan.check()
        return
    options = PlanOptions(
        engine_versions=engine_versions,
        allow_downgrade=allow_downgrade,
        pre=pre,
        update=tuple(update or ()),
        lock_path=lock_path if lock_path.is_file() else None,
        platform=platform,
    )
    outcome = plan_install(context, refs or [], options)
    outcome.catalog.close()
    engine = outcome.engine
    _render(outcome.plan, output, f"target engine: {engine.engine_version_text} ({engine.source})")
    outcome.plan.check()
    if write_lock:
        from feeds.lockfile import write_lock as write_lock_file

        write_lock_file(lock_path, outcome.lock)


def _render(plan: Any, output: str, footer: str) -> None:
    from cli.render import emit_json, emit_text, table

    if output == "json":
        emit_json({**plan.to_json(), "source": footer})
        return
    rows = [(e.name, e.version, (e.digest or "")[:19], e.action, e.reason) for e in plan.entries]
    emit_text(table(["artifact", "version", "digest", "action", "reason"], rows))
    for entry in plan.entries:
        if entry.note:
            emit_text(f"note: {entry.name} {entry.version} chosen; newer {entry.note}")
    emit_text(footer)
