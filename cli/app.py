"""Root of the command tree: falcoctl's groups (registry, artifact, index) plus falconet's own.

Command modules import only typer at module level; each imports its core function inside the
command body, so `falconet --help` stays fast.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated

import typer

from cli.context import ENV

GROUPS: dict[str, str] = {
    "registry": "Push, pull and authenticate against OCI registries.",
    "artifact": "Install, inspect, sign, verify and mirror Falco artifacts.",
    "index": "Manage the artifact indexes (falcoctl's index.yaml format).",
    "config": "Show the effective configuration.",
    "key": "Create signing keys (cosign format).",
    "trust": "The Sigstore trusted root for keyless signatures (offline).",
    "rules": "Validate, describe and list Falco rules files.",
    "compliance": "Compliance frameworks: catalogue, overlays, coverage reports.",
    "bpf": "Live eBPF capture: checks and diagnostics.",
    "plugin": "Native Falco plugins: describe one as `run` loads it.",
}

# Each module exposes register(root, groups). Order only affects help listing order.
COMMAND_MODULES: list[str] = [
    "cli.commands.version",
    "cli.commands.config",
    "cli.commands.index",
    "cli.commands.registry",
    "cli.commands.artifact",
    "cli.commands.run",
    "cli.commands.key",
    "cli.commands.signing",
    "cli.commands.trust",
    "cli.commands.rules",
    "cli.commands.compliance",
    "cli.commands.resolve",
    "cli.commands.response",
    "cli.commands.follow",
    "cli.commands.bpf",
    "cli.commands.plugin",
    "cli.commands.ui",
]


def _version_callback(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"falconet {version('falconet')}")
        raise typer.Exit()


def _root_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    config: Annotated[
        str | None,
        typer.Option("--config", envvar="FALCONET_CONFIG", help="Path of falconet.yaml."),
    ] = None,
    log_format: Annotated[
        str, typer.Option("--log-format", help="Log format on stderr: text|json (color = text).")
    ] = "text",
    log_level: Annotated[
        str, typer.Option("--log-level", help="Log level: info|warn|debug|trace (falcoctl's).")
    ] = "info",
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """falconet: signed Falco rules and plugins from OCI registries, and their engine."""
    from cli.logs import LOG_FORMATS, LOG_LEVELS, configure_logging

    if log_format not in LOG_FORMATS:
        raise typer.BadParameter(
            f"{log_format!r}: use {'|'.join(LOG_FORMATS)}", param_hint="--log-format"
        )
    if log_level not in LOG_LEVELS:
        raise typer.BadParameter(
            f"{log_level!r}: use {'|'.join(LOG_LEVELS)}", param_hint="--log-level"
        )
    ENV.debug = debug
    ENV.config_path = config
    ENV.log_format = "json" if log_format == "json" else "text"
    configure_logging(debug=debug, log_format=ENV.log_format, level=log_level)


# Root options that take a value: the token after them is not a command name.
_VALUE_OPTIONS = {"--config", "--log-format", "--log-level"}
# falcoctl's persistent flags, which its users (the Falco Helm chart: `artifact install
# --log-format=json`) put after the command: moved in front of it, where falconet reads them.
_GLOBAL_OPTIONS = {"--config", "--log-format", "--log-level", "--debug"}


def hoist_global_options(argv: list[str]) -> list[str]:
    """argv with the root options that follow the command names moved before them."""
    front: list[str] = []
    rest: list[str] = []
    tokens = iter(argv)
    seen_command = False
    for token in tokens:
        if token == "--":
            rest.append(token)
            rest.extend(tokens)
            break
        name = token.split("=", 1)[0]
        if seen_command and name in _GLOBAL_OPTIONS:
            front.append(token)
            if name in _VALUE_OPTIONS and "=" not in token:
                value = next(tokens, None)
                if value is not None:
                    front.append(value)
            continue
        if not token.startswith("-"):
            seen_command = True
        rest.append(token)
    return front + rest if front else argv


def invoked_path(argv: list[str]) -> list[str]:
    """The command names at the front of argv (`artifact install` in `falconet --debug artifact
    install x`): at most a group and its command."""
    names: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token.startswith("-"):
            if names or token in ("-h", "--help", "--version"):
                break  # an option of the command (or help/version) ends the path
            if token in _VALUE_OPTIONS:
                next(tokens, None)
            continue
        names.append(token)
        if len(names) == 2:
            break
    return names


def _command_name(info: typer.models.CommandInfo) -> str:
    if info.name:
        return info.name
    assert info.callback is not None
    return info.callback.__name__.lower().replace("_", "-")


def _only(commands: list[typer.models.CommandInfo], name: str) -> list[typer.models.CommandInfo]:
    return [info for info in commands if _command_name(info) == name]


def _prune(root: typer.Typer, groups: dict[str, typer.Typer], path: list[str]) -> set[str]:
    """Keeps only the invoked command (typer converts every registered command into click's on
    each run: tens of milliseconds of start-up for commands that will not run). Names that do
    not match keep the whole tree, so help, suggestions and errors stay click's. Returns the
    groups to add."""
    wanted = set(groups)
    if not path:
        return wanted
    head = path[0]
    own_groups = [info for info in root.registered_groups if info.name == head]
    if head in groups:
        group = groups[head]
        if len(path) > 1 and _only(group.registered_commands, path[1]):
            group.registered_commands = _only(group.registered_commands, path[1])
        root.registered_commands, root.registered_groups = [], []
        return {head}
    if own_groups:  # a group a module added to the root itself
        root.registered_commands, root.registered_groups = [], own_groups
        return set()
    if _only(root.registered_commands, head):
        root.registered_commands = _only(root.registered_commands, head)
        root.registered_groups = []
        return set()
    return wanted


def build_app(argv: list[str] | None = None) -> typer.Typer:
    """The command tree; with argv, only the part of it that argv invokes."""
    root = typer.Typer(
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=True,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    root.callback()(_root_options)
    groups: dict[str, typer.Typer] = {}
    for name, help_text in GROUPS.items():
        groups[name] = typer.Typer(no_args_is_help=True, help=help_text)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(root, groups)
    kept = _prune(root, groups, invoked_path(argv)) if argv is not None else set(groups)
    for name, group in groups.items():
        if name in kept and (group.registered_commands or group.registered_groups):
            root.add_typer(group, name=name)
    return root


def main() -> None:
    from cli.errors import exit_on_error

    try:
        with exit_on_error():
            argv = hoist_global_options(sys.argv[1:])
            build_app(argv)(args=argv)
    except SystemExit as done:
        _exit_now(done.code)


def _exit_now(code: object) -> None:
    """Exits without the interpreter's teardown (tearing down every imported module costs a
    short command tens of milliseconds), once nothing is left that a normal exit would finish:
    atexit handlers run here, output is flushed, and a live non-daemon thread (which a normal
    exit would wait for) means a normal exit."""
    import atexit
    import os
    import threading

    status = code if isinstance(code, int) else (0 if code is None else 1)
    if isinstance(code, str):
        sys.stderr.write(code + "\n")
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    profiled = sys.getprofile() is not None or sys.gettrace() is not None  # they write at exit
    if profiled or any(not thread.daemon for thread in others):
        sys.exit(status)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        status = status or 1
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
