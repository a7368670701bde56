"""falconet in falcoctl's place: falcoctl.yaml (camelCase keys, as the Falco Helm chart writes
it), FALCOCTL_* variables, and falcoctl's persistent flags after the command."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import CliRunner

# The Falco chart's falcoctl.yaml (chart/falco/values.yaml `falcoctl.config`), with its
# directories in the test's home and its ref on the feed embedded in falconet (no network).
CHART_CONFIG = """\
artifact:
  allowedTypes:
    - rulesfile
    - plugin
  install:
    resolveDeps: true
    refs: [falconet-rules:0]
    rulesfilesDir: {rules}
    pluginsDir: {plugins}
  follow:
    refs: [falconet-rules:0]
    every: 168h
    falcoversions: http://localhost:8765/versions
    rulesfilesDir: {rules}
    pluginsDir: {plugins}
"""


def _chart_config(home: Path) -> Path:
    path = home / "falcoctl.yaml"
    path.write_text(CHART_CONFIG.format(rules=home / "rulesfiles", plugins=home / "plugins"))
    return path


def _settings(run_cli: CliRunner, *args: str, env: dict[str, str] | None = None) -> dict:
    result = run_cli("config", "show", "-o", "json", *args, env=env)
    assert result.returncode == 0, result.stderr
    return {row["key"]: row for row in json.loads(result.stdout)["settings"]}


def test_the_charts_install_command_runs_unchanged(run_cli: CliRunner, falconet_home) -> None:
    """`falcoctl artifact install --log-format=json` with the chart's config, as its init
    container runs it."""
    config = _chart_config(falconet_home)
    result = run_cli("artifact", "install", "--config", str(config), "--log-format=json")
    assert result.returncode == 0, result.stderr
    assert (falconet_home / "rulesfiles" / "falconet_rules.yaml").is_file()
    for line in filter(None, result.stderr.splitlines()):
        assert json.loads(line)["level"]  # every log line is JSON


def test_falcoctl_keys_map_onto_falconets(run_cli: CliRunner, falconet_home) -> None:
    config = _chart_config(falconet_home)
    settings = _settings(run_cli, "--config", str(config))
    assert settings["artifact.allowed_types"]["value"] == ["rulesfile", "plugin"]
    assert settings["artifact.install.rulesfiles_dir"]["value"] == str(falconet_home / "rulesfiles")
    assert settings["artifact.follow.engine_versions"]["value"] == "http://localhost:8765/versions"
    assert settings["artifact.install.resolve_deps"]["origin"] == f"falcoctl:{config}"
    shown = run_cli("config", "show", "--config", str(config)).stdout
    assert f"looked for {config}: read as falcoctl's" in shown


def test_precedence_file_then_falcoctl_env_then_falconet_env(run_cli, falconet_home) -> None:
    config = _chart_config(falconet_home)
    env = {"FALCOCTL_ARTIFACT_ALLOWEDTYPES": "rulesfile", "FALCOCTL_ARTIFACT_NOVERIFY": "true"}
    settings = _settings(run_cli, "--config", str(config), env=env)
    assert settings["artifact.allowed_types"]["value"] == ["rulesfile"]
    assert settings["artifact.allowed_types"]["origin"] == "env:FALCOCTL_ARTIFACT_ALLOWEDTYPES"
    assert settings["artifact.no_verify"]["value"] is True
    env["FALCONET_ARTIFACT_ALLOWED_TYPES"] = "plugin"
    settings = _settings(run_cli, "--config", str(config), env=env)
    assert settings["artifact.allowed_types"]["value"] == ["plugin"]


def test_keys_are_case_insensitive_as_in_viper(run_cli, falconet_home) -> None:
    config = falconet_home / "falcoctl.yaml"
    config.write_text("artifact:\n  ALLOWEDTYPES: [plugin]\n  install:\n    resolvedeps: false\n")
    settings = _settings(run_cli, "--config", str(config))
    assert settings["artifact.allowed_types"]["value"] == ["plugin"]
    assert settings["artifact.install.resolve_deps"]["value"] is False


def test_ignored_and_unknown_falcoctl_keys(run_cli, falconet_home) -> None:
    config = falconet_home / "falcoctl.yaml"
    config.write_text("driver:\n  type: [modern_ebpf]\nartifact:\n  follow:\n    tmpDir: /tmp\n")
    result = run_cli("config", "show", "--config", str(config))
    assert result.returncode == 0
    assert "falcoctl key 'driver' ignored" in result.stderr
    assert "falcoctl key 'artifact.follow.tmpDir' ignored" in result.stderr
    config.write_text("artifact:\n  allowTypes: [rulesfile]\n")
    refused = run_cli("config", "show", "--config", str(config))
    assert refused.returncode == 2
    assert "unknown falcoctl key 'artifact.allowTypes'" in refused.stderr
    assert "did you mean 'artifact.allowedTypes'?" in refused.stderr
    config.write_text("artifact:\n  allowedTypes: rulesfile\n")  # a string, not a list
    assert run_cli("config", "show", "--config", str(config)).returncode == 2


def test_a_falconet_file_is_still_read_as_falconets(run_cli, falconet_home) -> None:
    config = falconet_home / "mine.yaml"
    config.write_text("artifact:\n  follow:\n    every: 1h\n")
    settings = _settings(run_cli, "--config", str(config))
    assert settings["artifact.follow.every"]["origin"] == f"file:{config}"


def test_falcoctls_persistent_flags_after_the_command(run_cli) -> None:
    result = run_cli("config", "show", "-o", "json", "--log-level", "warn", "--log-format=color")
    assert result.returncode == 0, result.stderr
    bad = run_cli("config", "show", "--log-level=loud")
    assert bad.returncode == 2 and "info|warn|debug|trace" in bad.stderr
