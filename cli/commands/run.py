"""`falconet run`: detection on a replayed capture, JSON event files or a webhook endpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.commands import run_sources as live_sources
from cli.options import RingbufSize, Strength

DEFAULT_WEB = "127.0.0.1:8765"
REPORT_EVERY = 60.0  # seconds between two --report-to status posts
SOURCES = (
    "syscall|k8s_audit|aws_cloudtrail|github|okta|gcp_auditlog|keycloak|nomad|json"
    "|a loaded plugin's"
)


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    root.command("run")(run)


def run(
    ctx: typer.Context,
    rules: Annotated[
        list[str] | None,
        typer.Option(
            "-r",
            "--rules",
            help="Rules file or directory (its .yaml/.yml, sorted); repeatable. "
            "Default: the installed rules (the embedded default feed is installed if none).",
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--source", help=f"{SOURCES}. Default: the rules' only source, or syscall."),
    ] = None,
    replay: Annotated[
        str | None,
        typer.Option("--replay", help="Capture (.scap, falconet) or JSON events file/dir."),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen", help="HOST:PORT of the k8s_audit, github or keycloak webhook endpoint."
        ),
    ] = None,
    output: Annotated[str, typer.Option("-o", "--output", help="text|json alerts")] = "text",
    rule_matching: Annotated[
        str, typer.Option("--rule-matching", help="first|all (falco.yaml rule_matching)")
    ] = "first",
    min_priority: Annotated[
        str, typer.Option("--min-priority", help="Least severe priority to run.")
    ] = "debug",
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Run only rules with any of these tags.")
    ] = None,
    disable_tag: Annotated[
        list[str] | None, typer.Option("--disable-tag", help="Disable rules with this tag.")
    ] = None,
    disable_rule: Annotated[
        list[str] | None,
        typer.Option("--disable-rule", help="Disable rules by name (`*` wildcards)."),
    ] = None,
    all_events: Annotated[
        bool, typer.Option("--all-events", help="Also evaluate enter events (falco -A).")
    ] = False,
    time_format: Annotated[
        str | None, typer.Option("--time-format", help="iso8601: UTC times in alerts.")
    ] = None,
    output_file: Annotated[
        str | None, typer.Option("--output-file", help="Append alerts to this file.")
    ] = None,
    output_http: Annotated[
        str | None, typer.Option("--output-http", help="POST JSON alerts to this URL.")
    ] = None,
    output_program: Annotated[
        str | None, typer.Option("--output-program", help="Pipe alerts to this command.")
    ] = None,
    output_syslog: Annotated[
        str | None, typer.Option("--output-syslog", help="Syslog socket path or HOST:PORT.")
    ] = None,
    compliance: Annotated[
        list[str] | None,
        typer.Option("--compliance", help="Run only rules covering framework[:control prefix]."),
    ] = None,
    maturity: Annotated[
        str | None,
        typer.Option("--maturity", help="stable|incubating|sandbox: rules at least this mature."),
    ] = None,
    strength: Strength = None,
    follow: Annotated[
        list[str] | None,
        typer.Option("--follow", help="Follow this rules artifact; hot-reload its updates."),
    ] = None,
    every: Annotated[
        str | None, typer.Option("--every", help="Follow check interval (e.g. 6h, 30s).")
    ] = None,
    cron: Annotated[str | None, typer.Option("--cron", help="Follow checks on a cron.")] = None,
    startup: Annotated[
        str | None,
        typer.Option("--startup", help="First follow check: immediate|skip|jitter."),
    ] = None,
    web: Annotated[
        str | None,
        typer.Option(
            "--web",
            help="HOST:PORT of /healthz /versions /metrics /rules "
            "(default 127.0.0.1:8765 for live runs).",
        ),
    ] = None,
    no_web: Annotated[bool, typer.Option("--no-web", help="No web endpoints.")] = False,
    ui: Annotated[
        bool,
        typer.Option("--ui", help="Also serve the web UI (/ui/) on the --web address."),
    ] = False,
    ui_store: Annotated[
        str | None,
        typer.Option("--ui-store", help="--ui alert store: SQLite file or postgresql:// URL."),
    ] = None,
    report_to: Annotated[
        str | None,
        typer.Option("--report-to", help="POST this node's status to a UI's /ingest/status."),
    ] = None,
    report_auth_file: Annotated[
        str | None,
        typer.Option("--report-auth-file", help="Credentials for --report-to (token/USER:PW)."),
    ] = None,
    response: Annotated[
        str | None, typer.Option("--response", help="Response rules file (hot-reloaded).")
    ] = None,
    ringbuf_size: RingbufSize = None,
    server: live_sources.Server = None,
    realm: live_sources.Realm = None,
    client_id: live_sources.ClientId = None,
    client_secret_file: live_sources.ClientSecretFile = None,
    token_file: live_sources.TokenFile = None,
    topic: live_sources.Topic = None,
    namespace: live_sources.Namespace = None,
    webhook_secret_file: live_sources.WebhookSecretFile = None,
    falco_config: Annotated[
        str | None,
        typer.Option(
            "--falco-config",
            help="Read Falco's falco.yaml (and its config_files fragments); flags given here "
            "override it (docs/run.md).",
        ),
    ] = None,
    plugin: Annotated[
        list[str] | None,
        typer.Option(
            "--plugin",
            help="Load this native plugin (its `plugins:` entry, else lib<NAME>.so in the "
            "plugins directory); repeatable, added to load_plugins.",
        ),
    ] = None,
) -> None:
    """Detect: evaluate events against Falco rules and print alerts (Falco's text or JSON).

    With --replay, process the input, print a summary on stderr and exit 0. With --listen, serve
    the webhook until SIGTERM/SIGINT (SIGUSR1 reopens --output-file)."""
    _check_choice("--output", output, ("text", "json"))
    _check_choice("--time-format", time_format, (None, "iso8601"))
    from cli.context import ENV
    from feeds.config import load_config
    from feeds.run_settings import (
        drops_config,
        http_output_options,
        live_options,
        output_queue_capacity,
        plugin_settings,
        webhook_limits,
    )
    from feeds.source_settings import connector_for, source_flags

    flags = source_flags(
        source,
        server,
        realm,
        client_id,
        client_secret_file,
        token_file,
        topic,
        namespace,
        webhook_secret_file,
    )
    config = load_config(ENV.config_path, flags={"engine.ringbuf_size": ringbuf_size, **flags})
    falco, given = _falco_settings(ctx, falco_config, replay)
    if falco is not None:
        from feeds.falco_config import OPTION_NAMES

        config = falco.layered(config)
        rules, output, min_priority, time_format, rule_matching, web, no_web = (
            falco.pick(name, value, given)
            for name, value in zip(
                OPTION_NAMES,
                (rules, output, min_priority, time_format, rule_matching, web, no_web),
                strict=True,
            )
        )
    drops = drops_config(config)  # all checked before any work
    plugin_configs, load_plugins, plugins_dir = plugin_settings(config, plugin)
    connector = connector_for(config, source, replay, listen)
    live = None if replay or listen or connector else live_options(config)
    from engine.runner import RunRequest, Selection, check_run_options, live_preflight
    from engine.runner import run as run_detection

    check_run_options(min_priority, listen)
    web_address = _web_address(web, no_web, None if ui else replay)
    if live is not None and not load_plugins and (source == "syscall" or not (source or rules)):
        live_preflight()  # before installing feeds or opening web endpoints

    rules_files = rules or _installed_rules()
    only_rules = _compliance_selection(
        rules_files, compliance, tag, maturity, min_priority, strength
    )
    if only_rules is None and not rules:
        only_rules = _installed_selection()
    if compliance or maturity:
        tag = None  # folded into the compliance selection, as install does
    request = RunRequest(
        rules_files=rules_files,
        source=source,
        replay=replay,
        listen=listen,
        json_output=output == "json",
        iso8601=time_format == "iso8601",
        all_events=all_events,
        selection=Selection(
            tags=tag or (),
            disable_tags=disable_tag or (),
            disable_rules=disable_rule or (),
            min_priority=min_priority,
            matching=rule_matching,  # type: ignore[arg-type]  # checked by the ruleset
            only_rules=tuple(only_rules or ()),
            **(falco.selection if falco else {}),
        ),
        outputs=_sink_specs(
            output_file, output_http, output_program, output_syslog, http_output_options(config)
        )
        + (falco.sink_specs(given) if falco else []),
        drops=drops,
        live=live,
        connector=connector,
        plugins=plugin_configs,
        load_plugins=load_plugins,
        plugins_dir=plugins_dir,
        # Not with native plugins: their fields are not part of the cache key.
        rules_cache_dir=None if load_plugins else Path(config["cache.dir"]) / "rules",
        webhook_limits=webhook_limits(config),
        queue_capacity=output_queue_capacity(config),
        **(falco.request if falco else {}),
    )
    from engine.daemon import DaemonOptions, run_daemon

    if ui and no_web:
        raise typer.BadParameter("--ui serves on the --web address: drop --no-web")
    extras = _ui_extras(ui, ui_store, report_to, report_auth_file, rules_files)
    options = DaemonOptions(
        watch_rules=falco.watch if falco else True,
        web=web_address,
        web_required=web is not None,
        follow=_follower(follow, every, cron, startup, extras),
        response_rules=response,
        extra_sinks=extras.sinks if extras else (),
        web_extra=extras.web_extra if extras else None,
    )
    from engine.drops_monitor import DropsExitError
    from engine.runner import native_plugins

    daemon = options.follow or options.web or response or not replay or extras
    try:
        with native_plugins(request):
            stats = run_daemon(request, options) if daemon else run_detection(request)
    except DropsExitError as error:  # Falco prints its summary before exiting on drops
        _write_summary(error.run_stats, output)
        raise
    finally:
        if extras:
            extras.close()
    _write_summary(stats, output)


def _falco_settings(
    ctx: typer.Context, path: str | None, replay: str | None
) -> tuple[Any, set[str]]:
    """--falco-config: falco.yaml's settings (feeds.falco_config), its ignored keys logged, and
    the options given on the command line (those keep their value)."""
    if path is None:
        return None, set()
    import logging

    from feeds.falco_config import read_falco_config

    given = {
        name
        for name in ctx.params
        if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"
    }
    settings = read_falco_config(path, replay=replay is not None)
    for line in settings.ignored:
        logging.getLogger("falconet.falco_config").info(line)
    return settings, given


def _ui_extras(
    ui: bool,
    store: str | None,
    report_to: str | None,
    report_auth_file: str | None,
    rules_files: list[str],
) -> Any:
    """--ui / --report-to: the UI's routes, sinks and status reporter (ui.run_wiring)."""
    if not ui and not report_to:
        return None
    from cli.context import ENV
    from ui.run_wiring import run_extras

    return run_extras(
        ui=ui,
        store=store,
        report_to=report_to,
        report_auth_file=report_auth_file,
        report_every=REPORT_EVERY,
        config_path=ENV.config_path,
        rules_files=rules_files,
    )


def _write_summary(stats: Any, output: str) -> None:
    import sys

    sys.stdout.flush()
    if output == "json":
        sys.stderr.write(_json_text(stats.as_json()) + "\n")
    else:
        sys.stderr.write(stats.summary_text() + "\n")


def _web_address(web: str | None, no_web: bool, replay: str | None) -> tuple[str, int] | None:
    """--web ADDR; by default on for live runs (as Falco's webserver), off for a replay."""
    if no_web or (web is None and replay):
        return None
    host, _, port = (web or DEFAULT_WEB).rpartition(":")
    if not host or not port.isdigit():
        raise typer.BadParameter(f"--web: {web!r} is not HOST:PORT")
    return host, int(port)


def _follower(
    refs: list[str] | None,
    every: str | None,
    cron: str | None,
    startup: str | None,
    extras: Any = None,
) -> Callable[[Any, Any], Any] | None:
    """A factory the daemon calls with its Reloader and Metrics: the feed follower, whose updates
    reload the running rules; None when nothing is followed (flags or artifact.follow.refs)."""
    from cli.context import ENV
    from feeds.context import FeedsContext

    flags = {
        "artifact.follow.every": every,
        "artifact.follow.cron": "" if every else cron,  # a flag schedule replaces the other kind
        "artifact.follow.startup": startup,
    }
    context = FeedsContext.load(ENV.config_path, flags)
    if not refs and not context.config["artifact.follow.refs"]:
        return None

    def start(reloader: Any, metrics: Any) -> Any:
        from feeds.follow import follower_from_config
        from feeds.install import install_dirs_from

        follower = follower_from_config(
            context,
            install_dirs_from(context),
            refs=tuple(refs or ()),
            on_update=reloader.reload,
            on_alert=reloader.refuse_update,
            metrics=metrics,
            on_tick=extras.follow_log.record if extras else None,
        )
        assert follower is not None  # refs were checked above
        follower.start()
        return follower

    return start


def _json_text(value: object) -> str:
    import json

    return json.dumps(value, sort_keys=True)


def _check_choice(option: str, value: str | None, choices: tuple[str | None, ...]) -> None:
    if value not in choices:
        allowed = ", ".join(c for c in choices if c)
        raise typer.BadParameter(f"{option}: unknown value {value!r}: use {allowed}")


def _installed_rules() -> list[str]:
    from cli.context import ENV
    from feeds.context import FeedsContext
    from feeds.run_rules import rules_for_run

    return [str(p) for p in rules_for_run(FeedsContext.load(ENV.config_path))]


def _compliance_selection(
    files: list[str],
    compliance: list[str] | None,
    tags: list[str] | None,
    maturity: str | None,
    min_priority: str,
    strength: str | None = None,
) -> list[str] | None:
    """Rule names the compliance selection enables (the same meaning as install and follow)."""
    if not compliance and not maturity:
        return None
    from feeds.compliance.operations import select_from_files

    priority = None if min_priority.lower() == "debug" else min_priority
    selection = select_from_files(
        files, compliance or (), tags or (), maturity, priority, strength=strength
    )
    return list(selection.rules)


def _installed_selection() -> list[str] | None:
    from cli.context import ENV
    from feeds.context import FeedsContext
    from feeds.run_rules import installed_selection

    return installed_selection(FeedsContext.load(ENV.config_path))


def _sink_specs(
    file: str | None,
    http: str | None,
    program: str | None,
    syslog: str | None,
    http_options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    specs: list[dict[str, Any]] = []
    if file:
        specs.append({"type": "file", "path": file})
    if http:
        specs.append({"type": "http", "url": http, **(http_options or {})})
    if program:
        specs.append({"type": "program", "command": program})
    if syslog:
        specs.append({"type": "syslog", "address": syslog})
    return specs
