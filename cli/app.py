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
    "rules": "Validate, describe and list Falco rules files.",
    "compliance": "Compliance frameworks: catalogue, overlays, coverage reports.",
    "bpf": "Live eBPF capture: checks and diagnostics.",
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
    "cli.commands.rules",
    "cli.commands.compliance",
    "cli.commands.resolve",
    "cli.commands.response",
    "cli.commands.follow",
    "cli.commands.bpf",
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
        str, typer.Option("--log-format", help="Log format on stderr: text|json.")
    ] = "text",
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """falconet: signed Falco rules and plugins from OCI registries, and their engine."""
    ENV.debug = debug
    ENV.config_path = config
    ENV.log_format = log_format
    from cli.logs import configure_logging

    configure_logging(debug=debug, log_format=log_format)


def build_app() -> typer.Typer:
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
    for name, group in groups.items():
        if group.registered_commands or group.registered_groups:
            root.add_typer(group, name=name)
    return root


def main() -> None:
    from cli.errors import exit_on_error

    with exit_on_error():
        build_app()()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
