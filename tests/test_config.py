"""Layered configuration: precedence, origins, unknown keys, `config show`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from feeds.config import load_config
from feeds.errors import ConfigError
from tests.conftest import CliRunner


def write_config(home: Path, text: str) -> Path:
    path = home / "config" / "falconet.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_are_rooted_in_falconet_home(falconet_home: Path) -> None:
    config = load_config()
    assert config["artifact.install.rulesfiles_dir"] == str(falconet_home / "rules")
    assert config.values["artifact.install.rulesfiles_dir"].origin == "default"
    assert config["cache.dir"] == str(falconet_home / "cache")


def test_flag_beats_env_beats_file_beats_default(
    falconet_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(
        falconet_home,
        "artifact:\n  follow:\n    every: 12h\n    cron: '0 * * * *'\n"
        "  allowed_types: [rulesfile]\n",
    )
    monkeypatch.setenv("FALCONET_ARTIFACT_FOLLOW_EVERY", "3h")
    config = load_config(flags={"artifact.follow.every": "1h", "artifact.follow.refs": None})
    assert (config["artifact.follow.every"], config.values["artifact.follow.every"].origin) == (
        "1h",
        "flag",
    )
    monkeypatch.setenv("FALCONET_ARTIFACT_ALLOWED_TYPES", "rulesfile;plugin")
    config = load_config()
    assert config["artifact.follow.every"] == "3h"
    assert config.values["artifact.follow.every"].origin == "env:FALCONET_ARTIFACT_FOLLOW_EVERY"
    assert config["artifact.allowed_types"] == ["rulesfile", "plugin"]
    assert config["artifact.follow.cron"] == "0 * * * *"
    assert config.values["artifact.follow.cron"].origin == f"file:{path}"


def test_unknown_key_names_the_closest_valid_key(falconet_home: Path) -> None:
    # falcoctl silently ignored this misspelling (falcosecurity/rules#303).
    write_config(falconet_home, "artifact:\n  allowedTypes: [rulesfile]\n")
    with pytest.raises(ConfigError) as info:
        load_config()
    assert "unknown key 'artifact.allowedTypes'" in str(info.value)
    assert info.value.hint == "did you mean 'artifact.allowed_types'?"


def test_unknown_inner_key_of_a_policy_is_an_error(falconet_home: Path) -> None:
    write_config(
        falconet_home, "verify:\n  policies:\n    - match: 'ghcr.io/*'\n      kye: a.pub\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config()
    assert "verify.policies.kye" in str(info.value)
    assert "key" in (info.value.hint or "")


def test_wrong_type_is_an_error(falconet_home: Path) -> None:
    write_config(falconet_home, "verify:\n  require: sometimes\n")
    with pytest.raises(ConfigError, match="must be a bool"):
        load_config()


def test_config_show_json_lists_origins(run_cli: CliRunner, falconet_home: Path) -> None:
    write_config(falconet_home, "index:\n  ttl: 1h\n")
    result = run_cli("config", "show", "-o", "json", env={"FALCONET_VERIFY_REQUIRE": "true"})
    assert result.returncode == 0, result.stderr
    settings = {s["key"]: s for s in json.loads(result.stdout)["settings"]}
    assert settings["index.ttl"]["value"] == "1h"
    assert settings["index.ttl"]["origin"].startswith("file:")
    assert settings["verify.require"] == {
        "key": "verify.require",
        "value": True,
        "origin": "env:FALCONET_VERIFY_REQUIRE",
    }


def test_bad_config_file_exits_with_usage_status_and_a_hint(
    run_cli: CliRunner, falconet_home: Path
) -> None:
    write_config(falconet_home, "artifact:\n  install:\n    rulesfile_dir: /tmp/x\n")
    result = run_cli("config", "show")
    assert result.returncode == 2
    assert "unknown key 'artifact.install.rulesfile_dir'" in result.stderr
    assert "hint: did you mean 'artifact.install.rulesfiles_dir'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_explicit_missing_config_file_is_refused(run_cli: CliRunner) -> None:
    result = run_cli("--config", "/nonexistent/falconet.yaml", "config", "show")
    assert result.returncode == 2
    assert "does not exist" in result.stderr
