"""Interop with skopeo (containers/image) both ways, and mirroring for air-gapped use."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from registry.artifacts import PushSpec, fetch_config, pull_artifact, push_artifact
from registry.digests import digest_bytes
from registry.mirror import mirror
from registry.reference import parse_reference
from registry.store import OCI_MANIFEST, ClientOptions, Descriptor, open_store
from registry.tags import signature_tag, sort_tags

PLAIN = ClientOptions(plain_http=True)


def _skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed (make install adds it)")
    return subprocess.run(
        ["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=120
    )


def _push_rules(ref: str, tmp_path: Path, version: str = "1.0.0", options=PLAIN):
    rules = tmp_path / "interop_rules.yaml"
    rules.write_text("- required_engine_version: 0.30.0\n- macro: m\n  condition: evt.num > 0\n")
    return push_artifact(
        open_store(parse_reference(ref), options),
        PushSpec(artifact_type="rulesfile", files=[rules], version=version),
    )


def _push_plugin(ref: str, tmp_path: Path):
    files = []
    for arch in ("amd64", "arm64"):
        (tmp_path / arch).mkdir(exist_ok=True)
        path = tmp_path / arch / "libdummy.so"
        path.write_bytes(f"plugin for {arch}".encode())
        files.append(path)
    return push_artifact(
        open_store(parse_reference(ref), PLAIN),
        PushSpec(
            artifact_type="plugin",
            files=files,
            platforms=["linux/amd64", "linux/arm64"],
            version="0.2.0",
        ),
    )


def test_skopeo_reads_what_falconet_pushed(registry, tmp_path: Path) -> None:
    ref = f"{registry.host}/interop/rules:1.0.0"
    pushed = _push_rules(ref, tmp_path)
    raw = _skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}")
    assert raw.returncode == 0, raw.stderr
    assert digest_bytes(raw.stdout.encode()) == pushed.digest
    config = _skopeo("inspect", "--config", "--raw", "--tls-verify=false", f"docker://{ref}")
    assert json.loads(config.stdout)["requirements"][0]["version"] == "0.30.0"

    oci_dir = tmp_path / "skopeo-oci"
    copied = _skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{oci_dir}:copied")
    assert copied.returncode == 0, copied.stderr
    pulled = pull_artifact(
        open_store(parse_reference(f"oci-layout:{oci_dir}:copied")), tmp_path / "out"
    )
    assert pulled.digest == pushed.digest
    assert pulled.config.name == "rules"


def test_skopeo_copies_a_plugin_index_falconet_selects_platforms(registry, tmp_path: Path) -> None:
    ref = f"{registry.host}/interop/plugin:0.2.0"
    pushed = _push_plugin(ref, tmp_path)
    oci_dir = tmp_path / "skopeo-oci"
    copied = _skopeo(
        "copy", "--all", "--src-tls-verify=false", f"docker://{ref}", f"oci:{oci_dir}:0.2.0"
    )
    assert copied.returncode == 0, copied.stderr
    layout = open_store(parse_reference(f"oci-layout:{oci_dir}:0.2.0"))
    for platform in ("linux/amd64", "linux/arm64"):
        pulled = pull_artifact(layout, tmp_path / platform.replace("/", "_"), platform=platform)
        assert pulled.digest == pushed.digest
        assert pulled.platform == platform


def test_skopeo_reads_a_layout_falconet_wrote(registry, tmp_path: Path) -> None:
    layout_dir = tmp_path / "feed"
    pushed = _push_rules(f"oci-layout:{layout_dir}:1.0.0", tmp_path)
    raw = _skopeo("inspect", "--raw", f"oci:{layout_dir}:1.0.0")
    assert raw.returncode == 0, raw.stderr
    assert digest_bytes(raw.stdout.encode()) == pushed.digest
    dest = f"{registry.host}/from-layout/rules:1.0.0"
    copied = _skopeo(
        "copy", "--dest-tls-verify=false", f"oci:{layout_dir}:1.0.0", f"docker://{dest}"
    )
    assert copied.returncode == 0, copied.stderr
    config, _, resolved = fetch_config(open_store(parse_reference(dest), PLAIN))
    assert resolved.root.digest == pushed.digest
    assert config.version == "1.0.0"


def _push_fake_signature(ref: str, digest: str) -> str:
    """A cosign-layout signature manifest at sha256-<hex>.sig (content irrelevant here)."""
    store = open_store(parse_reference(ref), PLAIN)
    payload = json.dumps({"critical": {"image": {"docker-manifest-digest": digest}}}).encode()
    config = b'{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}'
    layer = Descriptor(
        "application/vnd.dev.cosign.simplesigning.v1+json",
        digest_bytes(payload),
        len(payload),
        annotations={"dev.cosignproject.cosign/signature": "MEUCIQ=="},
    )
    config_desc = Descriptor(
        "application/vnd.oci.image.config.v1+json", digest_bytes(config), len(config)
    )
    store.push_blob(payload, layer)
    store.push_blob(config, config_desc)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc.to_json(),
        "layers": [layer.to_json()],
    }
    tag = signature_tag(digest)
    store.push_manifest(json.dumps(manifest).encode(), OCI_MANIFEST, tag)
    return tag


def test_mirror_to_layout_then_pull_offline(run_cli, registry, tmp_path: Path) -> None:
    base = f"{registry.host}/airgap/rules"
    first = _push_rules(f"{base}:1.0.0", tmp_path, "1.0.0")
    _push_rules(f"{base}:1.1.0", tmp_path, "1.1.0")
    sig = _push_fake_signature(base, first.digest)

    layout_dir = tmp_path / "mirror"
    result = mirror(
        open_store(parse_reference(base), PLAIN),
        open_store(parse_reference(f"oci-layout:{layout_dir}")),
    )
    assert sorted(t for t, _ in result.tags) == ["1.0.0", "1.1.0"]
    assert result.signatures == [sig]

    again = mirror(
        open_store(parse_reference(base), PLAIN),
        open_store(parse_reference(f"oci-layout:{layout_dir}")),
    )
    assert again.blobs_copied == 0

    registry.stop()
    layout = open_store(parse_reference(f"oci-layout:{layout_dir}"))
    assert sort_tags(layout.list_tags()) == ["1.0.0", "1.1.0"]
    assert sig in layout.list_tags()
    offline = run_cli(
        "registry", "pull", f"oci-layout:{layout_dir}:1.0.0", "--dest-dir", str(tmp_path / "out"),
        "-o", "json",
    )  # fmt: skip
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)["digest"] == first.digest


def test_mirror_registry_to_registry_with_plugin_index(registry_factory, tmp_path: Path) -> None:
    source, target = registry_factory(), registry_factory()
    pushed = _push_plugin(f"{source.host}/plugins/dummy:0.2.0", tmp_path)
    result = mirror(
        open_store(parse_reference(f"{source.host}/plugins/dummy:0.2.0"), PLAIN),
        open_store(parse_reference(f"{target.host}/mirror/dummy"), PLAIN),
    )
    assert result.tags == [("0.2.0", pushed.digest)]
    assert result.manifests_copied == 3
    source.stop()
    pulled = pull_artifact(
        open_store(parse_reference(f"{target.host}/mirror/dummy:0.2.0"), PLAIN),
        tmp_path / "out",
        platform="linux/arm64",
    )
    assert pulled.digest == pushed.digest
    assert pulled.platform == "linux/arm64"


def test_mirror_one_tag_under_the_destination_tag(registry, tmp_path: Path) -> None:
    pushed = _push_rules(f"{registry.host}/one/rules:1.0.0", tmp_path)
    result = mirror(
        open_store(parse_reference(f"{registry.host}/one/rules:1.0.0"), PLAIN),
        open_store(parse_reference(f"oci-layout:{tmp_path / 'l'}:stable")),
    )
    assert result.tags == [("stable", pushed.digest)]
    assert open_store(parse_reference(f"oci-layout:{tmp_path / 'l'}")).list_tags() == ["stable"]


def test_mirror_layout_back_into_a_registry(registry_factory, tmp_path: Path) -> None:
    """The air-gap round trip: registry -> layout (carried over) -> another registry."""
    outside, inside = registry_factory(), registry_factory()
    first = _push_rules(f"{outside.host}/gap/rules:2.0.0", tmp_path, "2.0.0")
    sig = _push_fake_signature(f"{outside.host}/gap/rules", first.digest)
    carried = tmp_path / "usb-stick"
    mirror(
        open_store(parse_reference(f"{outside.host}/gap/rules"), PLAIN),
        open_store(parse_reference(f"oci-layout:{carried}")),
    )
    outside.stop()
    result = mirror(
        open_store(parse_reference(f"oci-layout:{carried}")),
        open_store(parse_reference(f"{inside.host}/mirrored/rules"), PLAIN),
    )
    assert result.tags == [("2.0.0", first.digest)]
    assert result.signatures == [sig]
    internal = open_store(parse_reference(f"{inside.host}/mirrored/rules:2.0.0"), PLAIN)
    assert sorted(internal.list_tags()) == sorted(["2.0.0", sig])
    assert pull_artifact(internal, tmp_path / "out").digest == first.digest


def test_mirror_within_one_registry_mounts_blobs(registry, tmp_path: Path) -> None:
    pushed = _push_plugin(f"{registry.host}/staging/dummy:0.2.0", tmp_path)
    result = mirror(
        open_store(parse_reference(f"{registry.host}/staging/dummy:0.2.0"), PLAIN),
        open_store(parse_reference(f"{registry.host}/prod/dummy"), PLAIN),
    )
    assert result.blobs_copied == 0
    assert result.blobs_mounted >= 3  # one config + two layers, no bytes moved
    pulled = pull_artifact(
        open_store(parse_reference(f"{registry.host}/prod/dummy:0.2.0"), PLAIN),
        tmp_path / "out",
        platform="linux/amd64",
    )
    assert pulled.digest == pushed.digest
