"""The command shell: version, help, usage errors and their exit statuses."""

from __future__ import annotations

from tests.conftest import CliRunner


def test_version_flag_prints_the_distribution_version(run_cli: CliRunner) -> None:
    from importlib.metadata import version

    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"falconet {version('falconet')}"


def test_unknown_command_is_a_usage_error(run_cli: CliRunner) -> None:
    result = run_cli("no-such-command")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_help_lists_the_falcoctl_groups(run_cli: CliRunner) -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for group in ("version",):
        assert group in result.stdout


def test_invoked_path_skips_root_options_and_their_values() -> None:
    from cli.app import invoked_path

    assert invoked_path(["--debug", "--config", "x.yaml", "artifact", "install", "a"]) == [
        "artifact",
        "install",
    ]
    assert invoked_path(["--log-format", "json", "version"]) == ["version"]
    assert invoked_path(["artifact", "--help"]) == ["artifact"]
    assert invoked_path(["--help"]) == []
    assert invoked_path([]) == []


def _commands(app) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    import typer

    command = typer.main.get_command(app)
    return {
        name: sorted(getattr(sub, "commands", {}) or [])
        for name, sub in command.commands.items()  # type: ignore[attr-defined]
    }


def test_the_tree_built_for_a_command_holds_just_that_command() -> None:
    from cli.app import build_app

    full = _commands(build_app())
    assert {"artifact", "registry", "version"} <= set(full)
    assert _commands(build_app(["artifact", "install", "x"])) == {"artifact": ["install"]}
    assert _commands(build_app(["version"])) == {"version": []}
    # A name that matches nothing keeps the whole tree, so click can suggest the right one.
    assert _commands(build_app(["artifact", "instal"]))["artifact"] == full["artifact"]
    assert _commands(build_app(["versio"])) == full
    # A group a module adds to the root itself (response) is kept whole when invoked.
    assert set(_commands(build_app(["response", "test"]))) == {"response"}


def test_a_mistyped_subcommand_gets_suggestions(run_cli: CliRunner) -> None:
    result = run_cli("artifact", "instal", "x")
    assert result.returncode == 2
    assert "install" in result.stderr and "Traceback" not in result.stderr
