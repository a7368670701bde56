"""`falconet artifact follow` (falcoctl's follow, for an external Falco) and `artifact rollback`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.commands.artifact import CaFile, Insecure, Output, PlainHttp, Platform, _context
from cli.options import (
    AllowedTypes,
    AssetsDir,
    NoVerify,
    PluginsDir,
    RequireSignature,
    RulesfilesDir,
    StateDir,
    Strength,
)


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    group = groups["artifact"]
    group.command("follow")(follow)
    group.command("rollback")(rollback)


def follow(
    refs: Annotated[
        list[str] | None,
        typer.Argument(help="Refs to follow (default: artifact.follow.refs)."),
    ] = None,
    every: Annotated[
        str | None, typer.Option("--every", help="Check interval, e.g. 6h, 30m, 10s.")
    ] = None,
    cron: Annotated[
        str | None, typer.Option("--cron", help="Check schedule as a cron expression.")
    ] = None,
    startup: Annotated[
        str | None,
        typer.Option("--startup", help="First check: immediate|skip|jitter (default jitter)."),
    ] = None,
    engine_versions: Annotated[
        str | None,
        typer.Option(
            "--engine-versions",
            help="Falco /versions URL or JSON file, re-read on every update "
            "(default: falconet's own engine).",
        ),
    ] = None,
    reload_signal: Annotated[
        str | None,
        typer.Option(
            "--reload-signal",
            help="PID or PIDFILE of Falco: sent SIGHUP after each successful swap.",
        ),
    ] = None,
    compliance: Annotated[
        list[str] | None,
        typer.Option(
            "--compliance",
            help="Enable only rules covering a framework[:control prefix] (repeatable; "
            "default: artifact.follow.compliance).",
        ),
    ] = None,
    strength: Strength = None,
    once: Annotated[
        bool, typer.Option("--once", help="Run one check of every ref, then exit.")
    ] = False,
    rulesfiles_dir: RulesfilesDir = None,
    plugins_dir: PluginsDir = None,
    assets_dir: AssetsDir = None,
    state_dir: StateDir = None,
    allowed_types: AllowedTypes = None,
    platform: Platform = None,
    no_verify: NoVerify = False,
    require_signature: RequireSignature = False,
    plain_http: PlainHttp = False,
    ca_file: CaFile = None,
    insecure: Insecure = False,
    output: Output = "text",
) -> None:
    """Keep artifacts up to date: one HEAD per ref per tick; a new digest is verified, staged,
    compiled (dry run) and swapped in atomically, keeping the previous set as last-good.
    A refused update leaves the running files alone and prints an internal alert. Runs until
    SIGTERM/SIGINT (or one tick with --once)."""
    import signal

    from feeds.errors import ConfigError
    from feeds.follow import follower_from_config
    from feeds.install import install_dirs_from

    if every and cron:
        raise ConfigError("--every and --cron both given", "choose one schedule")
    flags = {
        "artifact.install.state_dir": state_dir,
        "artifact.follow.every": every,
        # A flag schedule replaces a configured one of the other kind.
        "artifact.follow.cron": "" if every else cron,
        "artifact.follow.startup": startup,
        "artifact.follow.compliance": compliance or None,
        "artifact.follow.strength": strength,
    }
    context = _context(plain_http, ca_file, insecure, flags)
    signaller = _reload_signaller(reload_signal) if reload_signal else None
    follower = follower_from_config(
        context,
        install_dirs_from(context, rulesfiles_dir, plugins_dir, assets_dir),
        refs=tuple(refs or ()),
        engine_versions=engine_versions,
        on_update=signaller,
        on_alert=lambda ref, why: _print_alert(ref, why, output),
        on_tick=lambda results: _print_results(results, output),
        no_verify=no_verify,
        require_signature=require_signature,
        allowed_types=tuple(t for item in allowed_types or [] for t in item.split(",") if t),
        platform=platform,
    )
    if follower is None:
        raise ConfigError("nothing to follow", "give refs, or set artifact.follow.refs")
    if once:
        results = follower.check()
        _print_results(results, output)
        if any(r.status == "failed" for r in results):
            raise typer.Exit(1)  # the reason was printed as an internal alert
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: follower.stop(timeout=None))
    from cli.render import warn

    refs_text = ", ".join(follower.options.refs)
    warn(f"following {refs_text} ({follower.schedule.describe()})")
    follower.run()


def _reload_signaller(target: str) -> Any:
    """SIGHUP to the pid (or the pid in the file, read at each swap: Falco may restart)."""
    import os
    import signal
    from pathlib import Path

    from cli.render import warn
    from feeds.errors import ConfigError

    def pid() -> int:
        text = target if target.isdigit() else Path(target).read_text().strip()
        if not text.isdigit():
            raise ConfigError(f"{target}: not a pid", "give a PID or a file holding one")
        return int(text)

    if not target.isdigit() and not Path(target).is_file():
        raise ConfigError(f"pid file {target} does not exist", "give Falco's pid or pid file")

    def send(_rules: list[Path]) -> None:
        try:
            os.kill(pid(), signal.SIGHUP)
        except (OSError, ConfigError) as error:
            warn(f"could not signal {target} to reload: {error}")

    return send


def _print_results(results: list[Any], output: str) -> None:
    import json

    from cli.render import emit_text

    for result in results:
        if output == "json":  # one document per line: follow is a stream
            emit_text(json.dumps(result.to_json()))
        elif result.status == "updated":
            emit_text(f"{result.ref}: updated to {result.version} ({result.digest})")
        elif result.status != "failed":  # failures are printed as internal alerts
            emit_text(f"{result.ref}: {result.status}")


def _print_alert(ref: str, why: str, output: str) -> None:
    import socket

    from cli.render import emit_text
    from engine.output import Priority
    from engine.sinks import internal_alert

    alert = internal_alert(
        "Falconet follow update refused",
        f"Falconet internal: update of {ref} refused, keeping the running set: {why}",
        Priority.ERROR,
        {"follow.ref": ref, "follow.error": why},
        socket.gethostname(),
    )
    emit_text(alert.line(json_output=output == "json"))


def rollback(
    name: Annotated[str, typer.Argument(help="Artifact name (see `artifact installed`).")],
    rulesfiles_dir: RulesfilesDir = None,
    state_dir: StateDir = None,
    output: Output = "text",
) -> None:
    """Restore the set an artifact had before its latest update (transactionally, after
    compiling it); `follow` then skips the digest rolled back from until a newer one appears."""
    from cli.render import emit_json, emit_text
    from feeds.follow import ruleset_validator
    from feeds.install import install_dirs_from
    from feeds.lastgood import rollback as run_rollback

    context = _context(flags={"artifact.install.state_dir": state_dir})
    dirs = install_dirs_from(context, rulesfiles_dir)
    record = run_rollback(context.state_dir, name, ruleset_validator(dirs.rulesfiles))
    if output == "json":
        emit_json(record.to_dict())
        return
    emit_text(f"rolled {record.name} back to {record.version} ({record.digest})")
