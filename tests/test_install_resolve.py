"""Install through the resolver: ranges, dependencies from config layers, the lock file,
requirements of the target engine, and no silent downgrade (real registry, real CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from registry.artifacts import (
    Dependency,
    PushSpec,
    Requirement,
    host_platform_string,
    push_artifact,
)
from registry.options import ClientOptions
from registry.reference import parse_reference
from registry.store import open_store
from registry.tarball import targz_bytes
from tests.conftest import CliRunner
from tests.support.registry_server import RegistryServer


def publish(
    server: RegistryServer,
    tmp: Path,
    repo: str,
    version: str,
    kind: str,
    depends: tuple[Dependency, ...] = (),
    requires: tuple[Requirement, ...] = (),
) -> str:
    store = open_store(
        parse_reference(f"{server.host}/{repo}:{version}"), ClientOptions(plain_http=True)
    )
    path = tmp / f"{repo.replace('/', '_')}-{version}.tar.gz"
    name = (
        f"lib{repo.rsplit('/', 1)[-1]}.so"
        if kind == "plugin"
        else f"{repo.rsplit('/', 1)[-1]}.yaml"
    )
    path.write_bytes(targz_bytes({name: f"{repo} {version}\n".encode()}))
    spec = PushSpec(
        kind,
        [path],
        version,
        platforms=(host_platform_string(),) if kind == "plugin" else (),
        dependencies=depends,
        requirements=requires,
    )
    return push_artifact(store, spec).digest


@pytest.fixture
def feed(registry: RegistryServer, falconet_home: Path, tmp_path: Path) -> RegistryServer:
    """An index with a rules artifact that depends on a plugin, several versions of each."""
    index = tmp_path / "index.yaml"
    index.write_text(
        f"- {{name: app-rules, type: rulesfile, registry: '{registry.host}', "
        "repository: app-rules}\n"
        f"- {{name: widget, type: plugin, registry: '{registry.host}', repository: widget}}\n"
    )
    for version in ("0.1.0", "0.1.5", "0.2.0"):
        publish(registry, tmp_path, "widget", version, "plugin")
    publish(
        registry,
        tmp_path,
        "app-rules",
        "1.0.0",
        "rulesfile",
        depends=(Dependency("widget", "0.1.0"),),
        requires=(Requirement("engine_version_semver", "0.50.0"),),
    )
    publish(
        registry,
        tmp_path,
        "app-rules",
        "2.0.0",
        "rulesfile",
        requires=(Requirement("engine_version_semver", "0.99.0"),),
    )
    config = falconet_home / "config" / "falconet.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(
        f"index:\n  defaults: false\nindexes:\n  - {{name: test, url: '{index}'}}\n"
        f"registries:\n  '{registry.host}': {{plain_http: true}}\n"
    )
    return registry


def install(run_cli: CliRunner, *args: str) -> tuple[int, dict, str]:
    result = run_cli("artifact", "install", *args, "-o", "json")
    data = json.loads(result.stdout) if result.returncode == 0 else {}
    return result.returncode, data, result.stderr


def versions(data: dict) -> dict[str, tuple[str, str]]:
    return {a["name"]: (a["version"], a["action"]) for a in data["artifacts"]}


def test_range_with_dependency_resolves_newest_compatible_and_writes_the_lock(
    feed: RegistryServer, run_cli: CliRunner, falconet_home: Path, tmp_path: Path
) -> None:
    code, data, err = install(run_cli, "app-rules@^1")
    assert code == 0, err
    # widget ^0.1.0 (caret on 0.x: same minor) -> 0.1.5, never 0.2.0
    assert versions(data) == {"app-rules": ("1.0.0", "install"), "widget": ("0.1.5", "install")}
    assert (falconet_home / "plugins" / "libwidget.so").read_text() == "widget 0.1.5\n"
    lock = Path(data["lock_file"]).read_text()
    assert "app-rules@^1" in lock and "0.1.5" in lock

    publish(feed, tmp_path, "widget", "0.1.7", "plugin")
    code, data, err = install(run_cli, "app-rules@^1")  # installed versions are kept
    assert code == 0, err
    assert versions(data)["widget"] == ("0.1.5", "keep")
    code, data, err = install(run_cli, "app-rules@^1", "--update", "widget")
    assert code == 0, err
    assert versions(data)["widget"] == ("0.1.7", "upgrade")
    assert (falconet_home / "plugins" / "libwidget.so").read_text() == "widget 0.1.7\n"


def test_engine_requirements_pick_what_the_engine_can_run(
    feed: RegistryServer, run_cli: CliRunner, tmp_path: Path
) -> None:
    code, _, err = install(run_cli, "app-rules@^2")  # 2.0.0 needs engine 0.99.0
    assert code == 7, err
    assert "engine_version_semver" in err and "0.57.0" in err and "Traceback" not in err
    code, data, err = install(run_cli, "app-rules")  # bare name: newest the engine can run
    assert code == 0, err
    assert versions(data)["app-rules"] == ("1.0.0", "install")
    falco = tmp_path / "falco-versions.json"  # an external Falco new enough for 2.0.0
    falco.write_text(
        json.dumps(
            {
                "engine_version_semver": "0.99.1",
                "engine_version": "99",
                "plugin_api_version": "3.11.0",
                "plugin_versions": {},
            }
        )
    )
    code, data, err = install(run_cli, "app-rules@^2", "--engine-versions", str(falco), "--dry-run")
    assert code == 0, err
    assert versions(data)["app-rules"] == ("2.0.0", "upgrade") and data["dry_run"]


def test_downgrade_is_refused_unless_allowed(
    feed: RegistryServer, run_cli: CliRunner, falconet_home: Path
) -> None:
    assert install(run_cli, "widget:0.1.5")[0] == 0
    code, _, err = install(run_cli, "widget:0.1.0")
    assert code == 7 and "refusing to downgrade widget 0.1.5 -> 0.1.0" in err
    assert (falconet_home / "plugins" / "libwidget.so").read_text() == "widget 0.1.5\n"
    code, data, err = install(run_cli, "widget:0.1.0", "--allow-downgrade")
    assert code == 0, err
    assert versions(data)["widget"] == ("0.1.0", "downgrade")


def test_locked_install_is_exact_and_fails_when_a_digest_is_gone(
    feed: RegistryServer, run_cli: CliRunner, falconet_home: Path, tmp_path: Path
) -> None:
    lock = tmp_path / "falconet.lock"
    code, data, err = install(run_cli, "app-rules@^1", "--lock", str(lock))
    assert code == 0, err
    for path in (falconet_home / "plugins").iterdir():
        path.unlink()
    (falconet_home / "state").rename(tmp_path / "old-state")  # a fresh machine, same lock
    publish(feed, tmp_path, "widget", "0.1.9", "plugin")  # newer, but the lock pins 0.1.5
    code, data, err = install(run_cli, "--locked", "--lock", str(lock))
    assert code == 0, err
    assert versions(data)["widget"][0] == "0.1.5"
    assert (falconet_home / "plugins" / "libwidget.so").read_text() == "widget 0.1.5\n"

    digest = next(a["digest"] for a in data["artifacts"] if a["name"] == "widget")
    import requests

    gone = requests.delete(f"{feed.url}/v2/widget/manifests/{digest}", timeout=10)
    assert gone.status_code == 202
    (falconet_home / "state").rename(tmp_path / "state-2")
    code, _, err = install(run_cli, "--locked", "--lock", str(lock))
    assert code == 3 and "--update widget" in err
