"""`falconet artifact resolve` as a real process, against a real registry and an index file:
ranges, dependencies through the index, the target engine's requirements, the lock file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from registry.artifacts import PushSpec, parse_dependency, parse_requirement, push_artifact
from registry.options import ClientOptions
from registry.reference import parse_reference
from registry.store import open_store
from tests.conftest import CliRunner
from tests.support.registry_server import RegistryServer

pytestmark = pytest.mark.registry

NAMES = ("cloudtrail-rules", "cloudtrail", "json", "falco-rules")


def publish(
    server: RegistryServer, name: str, version: str, tmp: Path, depends=(), requires=()
) -> str:
    path = tmp / f"{name}-{version}.yaml"
    path.write_text("- list: l\n  items: []\n")
    ref = parse_reference(f"{server.host}/falcosecurity/{name}:{version}")
    spec = PushSpec(
        "rulesfile",
        [path],
        version,
        name=name,
        dependencies=[parse_dependency(d) for d in depends],
        requirements=[parse_requirement(r) for r in requires],
        add_floating_tags=True,
    )
    return push_artifact(open_store(ref, ClientOptions(plain_http=True)), spec).digest


@pytest.fixture
def feed(run_cli: CliRunner, registry: RegistryServer, falconet_home: Path, tmp_path: Path):
    publish(registry, "cloudtrail-rules", "0.12.0", tmp_path, ["cloudtrail:0.12.0", "json:0.7.0"])
    publish(registry, "cloudtrail-rules", "0.13.0", tmp_path, ["cloudtrail:0.13.0", "json:0.7.0"])
    for version in ("0.12.0", "0.12.3", "0.13.0"):
        publish(registry, "cloudtrail", version, tmp_path)
    publish(registry, "json", "0.7.1", tmp_path)
    publish(registry, "falco-rules", "4.0.0", tmp_path, requires=["engine_version_semver:0.50.0"])
    publish(registry, "falco-rules", "5.0.0", tmp_path, requires=["engine_version_semver:0.99.0"])
    index = tmp_path / "index.yaml"
    index.write_text(
        "".join(
            f"- name: {name}\n  type: rulesfile\n  registry: {registry.host}\n"
            f"  repository: falcosecurity/{name}\n  description: {name}\n"
            for name in NAMES
        )
    )
    added = run_cli("index", "add", "lab", str(index))
    assert added.returncode == 0, added.stderr
    return registry


def resolve_json(run_cli: CliRunner, *args: str) -> dict:
    result = run_cli("artifact", "resolve", *args, "--plain-http", "-o", "json")
    assert result.returncode == 0, result.stderr
    return {a["name"]: a for a in json.loads(result.stdout)["artifacts"]}


def test_range_and_dependencies_through_the_index(run_cli: CliRunner, feed) -> None:
    plan = resolve_json(run_cli, "cloudtrail-rules@~0.12")
    assert {n: (a["version"], a["action"]) for n, a in plan.items()} == {
        "cloudtrail-rules": ("0.12.0", "install"),
        "cloudtrail": ("0.12.3", "install"),
        "json": ("0.7.1", "install"),
    }
    assert plan["cloudtrail"]["reason"] == "dependency of cloudtrail-rules"
    assert plan["cloudtrail"]["digest"].startswith("sha256:")


def test_floating_tag_reference_pins_its_version(run_cli: CliRunner, feed) -> None:
    plan = resolve_json(run_cli, "cloudtrail-rules:0.12")
    assert plan["cloudtrail-rules"]["version"] == "0.12.0"


def test_requirement_unmet_exits_7_with_a_hint(run_cli: CliRunner, feed, tmp_path: Path) -> None:
    result = run_cli("artifact", "resolve", "falco-rules@^5", "--plain-http")
    assert result.returncode == 7
    assert "engine_version_semver 0.99.0" in result.stderr
    assert "hint: falco-rules 4.0.0 is the newest release this engine supports" in result.stderr
    assert "Traceback" not in result.stderr
    versions = tmp_path / "versions.json"
    versions.write_text(json.dumps({"engine_version_semver": "0.99.1", "engine_version": "99"}))
    newer = resolve_json(
        run_cli, "falco-rules@latest-compatible", "--engine-versions", str(versions)
    )
    assert newer["falco-rules"]["version"] == "5.0.0"


def test_bad_range_is_a_usage_error(run_cli: CliRunner, feed) -> None:
    result = run_cli("artifact", "resolve", "json@^seven", "--plain-http")
    assert result.returncode == 2
    assert "invalid version range" in result.stderr and "hint:" in result.stderr


def test_text_output_lists_the_plan(run_cli: CliRunner, feed) -> None:
    result = run_cli("artifact", "resolve", "cloudtrail-rules", "--plain-http")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ARTIFACT", "VERSION", "DIGEST", "ACTION", "REASON"]
    assert any(line.startswith("cloudtrail-rules") and "0.13.0" in line for line in lines)
    assert "target engine:" in lines[-1]


def test_lock_keeps_versions_until_update(
    run_cli: CliRunner, feed: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    first = run_cli("artifact", "resolve", "cloudtrail-rules@~0.12", "--plain-http", "--write-lock")
    assert first.returncode == 0, first.stderr
    lock = (falconet_home / "falconet.lock").read_text()
    assert "cloudtrail-rules@~0.12:" in lock and "version: 0.12.3" in lock
    publish(feed, "cloudtrail", "0.12.9", tmp_path)
    kept = resolve_json(run_cli, "cloudtrail-rules@~0.12")
    assert kept["cloudtrail"]["version"] == "0.12.3"
    updated = resolve_json(run_cli, "cloudtrail-rules@~0.12", "--update", "cloudtrail")
    assert updated["cloudtrail"]["version"] == "0.12.9"
    unknown = run_cli("artifact", "resolve", "json", "--plain-http", "--update", "ghost")
    assert unknown.returncode == 3 and "ghost not in falconet.lock" in unknown.stderr


def test_downgrade_of_an_installed_artifact_is_refused(run_cli: CliRunner, feed) -> None:
    installed = run_cli("artifact", "install", "cloudtrail:0.13.0", "--plain-http")
    assert installed.returncode == 0, installed.stderr
    refused = run_cli("artifact", "resolve", "cloudtrail-rules@~0.12", "--plain-http")
    assert refused.returncode == 7
    assert "refusing to downgrade cloudtrail 0.13.0 -> 0.12.3" in refused.stderr
    assert "downgrade-refused" in refused.stdout  # the plan is still shown
    allowed = resolve_json(run_cli, "cloudtrail-rules@~0.12", "--allow-downgrade")
    assert allowed["cloudtrail"]["action"] == "downgrade"
