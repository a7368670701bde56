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

# The plugins falconet's engine stands in for (json, cloudtrail, ...) would be `provided`;
# these tests use plugin names it does not provide, so they come from the registry.
NAMES = ("cloudtrail-rules", "trail", "jsonx", "falco-rules", "okta-rules", "k8s-rules")


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
    publish(registry, "cloudtrail-rules", "0.12.0", tmp_path, ["trail:0.12.0", "jsonx:0.7.0"])
    publish(registry, "cloudtrail-rules", "0.13.0", tmp_path, ["trail:0.13.0", "jsonx:0.7.0"])
    for version in ("0.12.0", "0.12.3", "0.13.0"):
        publish(registry, "trail", version, tmp_path)
    publish(registry, "jsonx", "0.7.1", tmp_path)
    publish(registry, "okta-rules", "0.11.0", tmp_path, ["okta:0.11.0"])
    publish(registry, "k8s-rules", "1.0.0", tmp_path, ["jsonx:1.0.0"])
    publish(registry, "jsonx", "1.0.0", tmp_path)
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
        "trail": ("0.12.3", "install"),
        "jsonx": ("0.7.1", "install"),
    }
    assert plan["trail"]["reason"] == "dependency of cloudtrail-rules"
    assert plan["trail"]["digest"].startswith("sha256:")


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
    result = run_cli("artifact", "resolve", "jsonx@^seven", "--plain-http")
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
    lock = (falconet_home / "state" / "falconet.lock").read_text()
    assert "cloudtrail-rules@~0.12:" in lock and "version: 0.12.3" in lock
    publish(feed, "trail", "0.12.9", tmp_path)
    kept = resolve_json(run_cli, "cloudtrail-rules@~0.12")
    assert kept["trail"]["version"] == "0.12.3"
    updated = resolve_json(run_cli, "cloudtrail-rules@~0.12", "--update", "trail")
    assert updated["trail"]["version"] == "0.12.9"
    unknown = run_cli("artifact", "resolve", "jsonx", "--plain-http", "--update", "ghost")
    assert unknown.returncode == 3 and "ghost not in falconet.lock" in unknown.stderr


def test_downgrade_of_an_installed_artifact_is_refused(run_cli: CliRunner, feed) -> None:
    installed = run_cli("artifact", "install", "trail:0.13.0", "--plain-http")
    assert installed.returncode == 0, installed.stderr
    refused = run_cli("artifact", "resolve", "cloudtrail-rules@~0.12", "--plain-http")
    assert refused.returncode == 7
    assert "refusing to downgrade trail 0.13.0 -> 0.12.3" in refused.stderr
    assert "downgrade-refused" in refused.stdout  # the plan is still shown
    allowed = resolve_json(run_cli, "cloudtrail-rules@~0.12", "--allow-downgrade")
    assert allowed["trail"]["action"] == "downgrade"


def test_locked_uses_exactly_the_locked_digests(
    run_cli: CliRunner, feed: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    written = run_cli(
        "artifact", "resolve", "cloudtrail-rules@~0.12", "--plain-http", "--write-lock"
    )
    assert written.returncode == 0, written.stderr
    publish(feed, "trail", "0.12.9", tmp_path)  # newer, but --locked never resolves
    locked = resolve_json(run_cli, "--locked")
    assert {n: (a["version"], a["reason"]) for n, a in locked.items()} == {
        "cloudtrail-rules": ("0.12.0", "locked"),
        "trail": ("0.12.3", "locked"),
        "jsonx": ("0.7.1", "locked"),
    }
    lock_path = falconet_home / "state" / "falconet.lock"
    digest = locked["jsonx"]["digest"]
    lock_path.write_text(lock_path.read_text().replace(digest, "sha256:" + "0" * 64))
    gone = run_cli("artifact", "resolve", "--locked", "--plain-http")
    assert gone.returncode == 3
    assert "locked jsonx 0.7.1" in gone.stderr and "is gone from" in gone.stderr
    assert "hint: re-resolve it: install --update jsonx" in gone.stderr


def test_a_release_held_back_by_the_engine_is_explained(run_cli: CliRunner, feed) -> None:
    result = run_cli("artifact", "resolve", "falco-rules", "--plain-http")
    assert result.returncode == 0, result.stderr
    assert (
        "note: falco-rules 4.0.0 chosen; newer falco-rules 5.0.0 requires "
        "engine_version_semver 0.99.0" in result.stdout
    )


def test_plugins_the_engine_provides_are_not_installed(
    run_cli: CliRunner, feed, tmp_path: Path
) -> None:
    plan = resolve_json(run_cli, "okta-rules")
    assert plan["okta"]["action"] == "provided"
    assert plan["okta"]["reason"] == "dependency of okta-rules (provided by the engine)"
    # An external Falco loads plugin files: there the plugin must come from the registry.
    versions = tmp_path / "falco-versions.json"
    versions.write_text(json.dumps({"engine_version_semver": "0.57.0"}))
    # Only the test's index: the public one (unreachable here) would make this exit 5.
    result = run_cli(
        "artifact", "resolve", "okta-rules", "--engine-versions", str(versions), "--plain-http",
        env={"FALCONET_INDEX_DEFAULTS": "false"},
    )  # fmt: skip
    assert result.returncode == 3 and "okta" in result.stderr


def test_plan_outcome_lists_what_the_installer_fetches(feed, falconet_home: Path) -> None:
    from feeds.context import FeedsContext, TransportFlags
    from feeds.planner import PlanOptions, plan_install

    context = FeedsContext.load(None, None, TransportFlags(plain_http=True))
    outcome = plan_install(context, ["cloudtrail-rules@~0.12"], PlanOptions())
    try:
        targets = {t.entry.name: t for t in outcome.to_fetch()}
        assert set(targets) == {"cloudtrail-rules", "trail", "jsonx"}
        trail = targets["trail"]
        assert trail.resolved.root.digest == trail.entry.digest
        assert trail.config.version == "0.12.3"
        assert outcome.lock.refs == {"cloudtrail-rules@~0.12": "cloudtrail-rules"}
    finally:
        outcome.catalog.close()


def test_installed_artifacts_stay_consistent(run_cli: CliRunner, feed) -> None:
    for ref in ("cloudtrail-rules:0.12.0", "trail:0.12.3", "jsonx:0.7.1"):
        installed = run_cli("artifact", "install", ref, "--plain-http")
        assert installed.returncode == 0, installed.stderr
    plan = resolve_json(run_cli, "okta-rules")
    assert plan["cloudtrail-rules"]["action"] == "keep"
    assert plan["cloudtrail-rules"]["reason"] == "installed"
    assert plan["jsonx"]["action"] == "keep"  # not moved to 1.0.0: nothing asks for it
    broken = run_cli("artifact", "resolve", "k8s-rules", "--plain-http")
    assert broken.returncode == 7
    assert "installed cloudtrail-rules 0.12.0 -> jsonx ^0.7.0" in broken.stderr
    assert "k8s-rules 1.0.0 -> jsonx ^1.0.0" in broken.stderr


def test_full_reference_with_a_comparator_range(run_cli: CliRunner, feed) -> None:
    plan = resolve_json(run_cli, f"{feed.host}/falcosecurity/jsonx@>=0.7,<1")
    assert plan["jsonx"]["version"] == "0.7.1"
    assert plan["jsonx"]["reference"].startswith(f"{feed.host}/falcosecurity/jsonx@sha256:")
