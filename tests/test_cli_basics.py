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
