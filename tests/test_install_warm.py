"""Re-installing, the blob cache, and layers read in place. The fast path that skips resolving
(feeds.install_stamp) must give the same report and lock as a full resolution, and must notice
a moved tag, a tampered file, a changed request and a signature policy."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import CliRunner
from tests.support.registry_server import RegistryServer
from tests.test_install import push, rules_tarball

FAST_PATH_LOG = "nothing to resolve"
STAMP = Path("state") / "last-resolution.json"


def push_rules(
    registry: RegistryServer, repo_tag: str, list_name: str, tmp: Path, version: str
) -> str:
    file_name = repo_tag.split("/")[1].split(":")[0]
    body = rules_tarball({f"{file_name}.yaml": f"- list: {list_name}\n  items: []\n"})
    return push(registry, repo_tag, {f"{file_name}.tar.gz": body}, tmp, version=version)


def publish_two(registry: RegistryServer, tmp_path: Path) -> list[str]:
    push_rules(registry, "warm/one:1.0.0", "a", tmp_path, "1.0.0")
    push_rules(registry, "warm/two:2.0.0", "b", tmp_path, "2.0.0")
    return [f"{registry.host}/warm/one:1.0.0", f"{registry.host}/warm/two:2.0.0"]


def install(run_cli: CliRunner, *args: str) -> tuple[dict, str]:
    result = run_cli("--debug", "artifact", "install", *args, "--plain-http", "-o", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def test_warm_reinstall_matches_a_full_resolution(
    run_cli: CliRunner, registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    refs = publish_two(registry, tmp_path)
    _, first_log = install(run_cli, *refs)
    assert FAST_PATH_LOG not in first_log
    lock = (falconet_home / "state" / "falconet.lock").read_bytes()

    warm, warm_log = install(run_cli, *refs)
    assert FAST_PATH_LOG in warm_log
    assert [(a["name"], a["action"], a["downloaded_blobs"]) for a in warm["artifacts"]] == [
        ("one", "keep", 0),
        ("two", "keep", 0),
    ]
    assert (falconet_home / "state" / "falconet.lock").read_bytes() == lock

    (falconet_home / STAMP).unlink()  # the next install resolves in full
    full, full_log = install(run_cli, *refs)
    assert FAST_PATH_LOG not in full_log
    assert full == warm
    assert (falconet_home / "state" / "falconet.lock").read_bytes() == lock


def test_moved_tag_is_installed_again(
    run_cli: CliRunner, registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    refs = publish_two(registry, tmp_path)
    install(run_cli, *refs)
    moved = push_rules(registry, "warm/one:1.0.0", "moved", tmp_path, "1.0.1")

    report, log = install(run_cli, *refs)
    assert FAST_PATH_LOG not in log
    one = next(a for a in report["artifacts"] if a["name"] == "one")
    assert (one["action"], one["digest"], one["downloaded_blobs"]) == ("upgrade", moved, 1)
    assert "moved" in (falconet_home / "rules" / "one.yaml").read_text()


def test_tampered_file_is_repaired(
    run_cli: CliRunner, registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    refs = publish_two(registry, tmp_path)
    install(run_cli, *refs)
    installed_file = falconet_home / "rules" / "two.yaml"
    installed_file.write_text("- list: b\n  items: [tampered]\n")

    report, log = install(run_cli, *refs)
    assert FAST_PATH_LOG not in log
    assert {a["name"]: a["action"] for a in report["artifacts"]} == {"one": "keep", "two": "repair"}
    assert "tampered" not in installed_file.read_text()


def test_other_refs_or_options_resolve_in_full(
    run_cli: CliRunner, registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    refs = publish_two(registry, tmp_path)
    install(run_cli, *refs)
    _, subset_log = install(run_cli, refs[0])  # `two` is installed but not asked for
    assert FAST_PATH_LOG not in subset_log
    _, pre_log = install(run_cli, *refs, "--pre")
    assert FAST_PATH_LOG not in pre_log
    lock = falconet_home / "state" / "falconet.lock"
    lock.write_text(lock.read_text() + "# edited\n")
    _, edited_log = install(run_cli, *refs)
    assert FAST_PATH_LOG not in edited_log
    _, again_log = install(run_cli, *refs)
    assert FAST_PATH_LOG in again_log


def test_signature_policy_still_applies_on_the_fast_path(
    run_cli: CliRunner, registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    refs = publish_two(registry, tmp_path)
    install(run_cli, *refs)
    refused = run_cli(
        "--debug", "artifact", "install", *refs, "--plain-http", "--require-signature"
    )
    assert refused.returncode == 6, refused.stderr
    assert FAST_PATH_LOG in refused.stderr
    assert "signature is required" in refused.stderr


def test_corrupt_cache_blob_is_downloaded_again(
    run_cli: CliRunner, registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    refs = publish_two(registry, tmp_path)
    install(run_cli, refs[0])
    blobs = falconet_home / "cache" / "blobs" / "sha256"
    layer = max(blobs.iterdir(), key=lambda p: p.stat().st_size)  # the tar.gz, not the config
    layer.write_bytes(b"X" * layer.stat().st_size)

    # Another install directory: everything is installed again from the (corrupt) cache.
    result = run_cli(
        "artifact", "install", refs[0], "--plain-http", "-o", "json",
        "--rulesfiles-dir", str(tmp_path / "other"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "cached copy is corrupt" in result.stderr
    assert json.loads(result.stdout)["artifacts"][0]["downloaded_blobs"] == 1
    assert (tmp_path / "other" / "one.yaml").read_text() == "- list: a\n  items: []\n"


def test_tampered_layout_blob_is_refused_and_kept(
    run_cli: CliRunner, registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    """A layout's own blob is read in place and verified while it is inflated: a tampered one
    is an error (exit 6) and, unlike a cache copy, is never deleted."""
    refs = publish_two(registry, tmp_path)
    layout = tmp_path / "layout"
    mirrored = run_cli("artifact", "mirror", refs[0], f"oci-layout:{layout}:1.0.0", "--plain-http")
    assert mirrored.returncode == 0, mirrored.stderr
    blobs = (layout / "blobs" / "sha256").iterdir()
    layer = next(p for p in blobs if p.read_bytes().startswith(b"\x1f\x8b"))  # the tar.gz
    tampered = bytearray(layer.read_bytes())
    tampered[-30] ^= 0xFF
    layer.write_bytes(bytes(tampered))

    result = run_cli("artifact", "install", f"oci-layout:{layout}:1.0.0")
    assert result.returncode == 6, result.stderr
    assert "does not match its digest" in result.stderr
    assert "Traceback" not in result.stderr
    assert layer.read_bytes() == bytes(tampered)
    assert not (falconet_home / "rules" / "one.yaml").exists()


def test_unreadable_stamp_means_a_full_resolution(
    run_cli: CliRunner, registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    refs = publish_two(registry, tmp_path)
    install(run_cli, *refs)
    stamp = falconet_home / STAMP
    for garbage in ("{not json", '{"version": 1, "refs": {}}', '{"version": 99}'):
        stamp.write_text(garbage)
        report, log = install(run_cli, *refs)
        assert FAST_PATH_LOG not in log
        assert {a["action"] for a in report["artifacts"]} == {"keep"}
        assert json.loads(stamp.read_text())["version"] == 1  # rewritten by the resolution
    _, log = install(run_cli, *refs)
    assert FAST_PATH_LOG in log
