"""Push/pull round trips of falcoctl artifacts against a real registry and OCI layouts."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from registry.artifacts import (
    PushSpec,
    fetch_config,
    parse_dependency,
    parse_requirement,
    pull_artifact,
    push_artifact,
)
from registry.digests import digest_file
from registry.errors import NotFoundError
from registry.reference import parse_reference
from registry.store import ClientOptions, open_store

RULES = """\
- required_engine_version: 26
- required_plugin_versions:
  - name: k8saudit
    version: 0.7.0
    alternatives:
      - name: k8saudit-eks
        version: 0.4.0
  - name: json
    version: 0.7.0
- rule: shell in container
  desc: a shell was spawned
  condition: evt.type = execve and proc.name = bash
  output: shell (user=%user.name)
  priority: WARNING
"""


def _rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_rules.yaml"
    path.write_text(RULES)
    return path


def _layer_names(tarball: Path) -> list[str]:
    with tarfile.open(tarball) as tar:
        return tar.getnames()


def test_rulesfile_roundtrip_reads_metadata_from_yaml(registry, tmp_path: Path) -> None:
    options = ClientOptions(plain_http=True, cache_dir=tmp_path / "cache")
    ref = parse_reference(f"{registry.host}/falcosecurity/rules/my-rules:1.2.3")
    store = open_store(ref, options)
    result = push_artifact(
        store,
        PushSpec(
            artifact_type="rulesfile",
            files=[_rules_file(tmp_path)],
            version="1.2.3",
            add_floating_tags=True,
        ),
    )
    assert set(result.tags) == {"1.2.3", "1", "1.2"}

    config, raw, resolved = fetch_config(open_store(ref, options))
    assert json.loads(raw) == {
        "name": "my-rules",
        "version": "1.2.3",
        "dependencies": [
            {"name": "json", "version": "0.7.0"},
            {
                "name": "k8saudit",
                "version": "0.7.0",
                "alternatives": [{"name": "k8saudit-eks", "version": "0.4.0"}],
            },
        ],
        "requirements": [{"name": "engine_version_semver", "version": "0.26.0"}],
    }
    assert config.name == "my-rules"
    assert config.requirements[0].name == "engine_version_semver"
    manifest = resolved.manifest_json
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.cncf.falco.rulesfile.config.v1+json"
    assert "annotations" not in manifest["config"]
    assert manifest["layers"][0]["annotations"] == {
        "org.opencontainers.image.title": "my_rules.tar.gz"
    }

    out = tmp_path / "out"
    pulled = pull_artifact(open_store(ref.with_tag("1"), options), out)
    assert pulled.digest == result.digest
    assert [f.name for f in pulled.files] == ["my_rules.tar.gz"]
    assert _layer_names(pulled.files[0]) == ["my_rules.yaml"]
    with tarfile.open(pulled.files[0]) as tar:
        assert tar.extractfile("my_rules.yaml").read().decode() == RULES  # type: ignore[union-attr]


def test_plugin_two_platforms_selects_the_asked_one(registry, tmp_path: Path) -> None:
    options = ClientOptions(plain_http=True)
    amd, arm = tmp_path / "amd64", tmp_path / "arm64"
    amd.mkdir()
    arm.mkdir()
    (amd / "libk8saudit.so").write_bytes(b"\x7fELF amd64 build")
    (arm / "libk8saudit.so").write_bytes(b"\x7fELF arm64 build")
    ref = parse_reference(f"{registry.host}/plugins/k8saudit:0.7.0")
    result = push_artifact(
        open_store(ref, options),
        PushSpec(
            artifact_type="plugin",
            files=[amd / "libk8saudit.so", arm / "libk8saudit.so"],
            platforms=["linux/amd64", "linux/arm64"],
            version="0.7.0",
            requirements=[parse_requirement("plugin_api_version:3.0.0")],
        ),
    )
    assert result.media_type == "application/vnd.oci.image.index.v1+json"

    for platform, expected in (("linux/amd64", b"amd64"), ("linux/arm64", b"arm64")):
        out = tmp_path / platform.replace("/", "-")
        pulled = pull_artifact(open_store(ref, options), out, platform=platform)
        assert pulled.artifact_type == "plugin"
        assert pulled.platform == platform
        with tarfile.open(pulled.files[0]) as tar:
            data = tar.extractfile("libk8saudit.so").read()  # type: ignore[union-attr]
        assert expected in data

    with pytest.raises(NotFoundError, match="linux/s390x"):
        pull_artifact(open_store(ref, options), tmp_path / "none", platform="linux/s390x")


def test_asset_roundtrip_keeps_a_given_targz(registry, tmp_path: Path) -> None:
    options = ClientOptions(plain_http=True)
    payload = tmp_path / "data.txt"
    payload.write_text("asset content\n")
    archive = tmp_path / "bundle.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(payload, arcname="data.txt")
    ref = parse_reference(f"{registry.host}/assets/bundle:2.0.0")
    push_artifact(
        open_store(ref, options),
        PushSpec(
            artifact_type="asset",
            files=[archive],
            version="2.0.0",
            dependencies=[parse_dependency("other:1.0.0")],
        ),
    )
    pulled = pull_artifact(open_store(ref, options), tmp_path / "out")
    assert pulled.artifact_type == "asset"
    assert pulled.files[0].name == "bundle.tar.gz"
    assert digest_file(pulled.files[0]) == digest_file(archive)
    assert pulled.config.dependencies[0].name == "other"


def test_identical_content_pushes_identical_digest(registry, tmp_path: Path) -> None:
    options = ClientOptions(plain_http=True)
    rules = _rules_file(tmp_path)
    spec = PushSpec(artifact_type="rulesfile", files=[rules], version="1.0.0")
    first = push_artifact(open_store(parse_reference(f"{registry.host}/a/r:1"), options), spec)
    rules.touch()  # a new mtime must not change the layer
    # Same artifact name (the repository's last element), other store: same digest.
    layout = parse_reference(f"oci-layout:{tmp_path / 'r'}:1.0.0")
    second = push_artifact(open_store(layout, options), spec)
    assert first.digest == second.digest


def test_layout_roundtrip_and_blob_cache(registry, tmp_path: Path) -> None:
    ref = parse_reference(f"oci-layout:{tmp_path / 'feed'}:0.1.0")
    push_artifact(
        open_store(ref),
        PushSpec(artifact_type="rulesfile", files=[_rules_file(tmp_path)], version="0.1.0"),
    )
    layout_root = tmp_path / "feed"
    assert json.loads((layout_root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout_root / "index.json").read_text())
    assert index["manifests"][0]["annotations"] == {"org.opencontainers.image.ref.name": "0.1.0"}
    pulled = pull_artifact(open_store(ref), tmp_path / "out")
    assert pulled.config.requirements[0].version == "0.26.0"

    # Re-pulling from a registry through the blob cache downloads nothing the second time.
    remote = parse_reference(f"{registry.host}/cache/test:0.1.0")
    options = ClientOptions(plain_http=True, cache_dir=tmp_path / "cache")
    push_artifact(
        open_store(remote, options),
        PushSpec(artifact_type="rulesfile", files=[_rules_file(tmp_path)], version="0.1.0"),
    )
    cold = pull_artifact(open_store(remote, options), tmp_path / "cold")
    warm = pull_artifact(open_store(remote, options), tmp_path / "warm")
    assert cold.downloaded_blobs == 1
    assert warm.downloaded_blobs == 0
    assert (tmp_path / "warm" / "my_rules.tar.gz").read_bytes() == cold.files[0].read_bytes()


def test_created_annotation_only_when_asked(tmp_path: Path) -> None:
    from registry.artifacts import parse_annotations

    rules = _rules_file(tmp_path)
    plain = push_artifact(
        open_store(parse_reference(f"oci-layout:{tmp_path / 'r'}:a")),
        PushSpec(artifact_type="rulesfile", files=[rules], version="1.0.0"),
    )
    stamped = push_artifact(
        open_store(parse_reference(f"oci-layout:{tmp_path / 'r'}:b")),
        PushSpec(
            artifact_type="rulesfile",
            files=[rules],
            version="1.0.0",
            annotation_source="https://example.com/rules",
            annotations=parse_annotations(["created=2026-01-01T00:00:00Z"]),
        ),
    )
    assert plain.digest != stamped.digest
    store = open_store(parse_reference(f"oci-layout:{tmp_path / 'r'}"))
    assert "annotations" not in json.loads(store.fetch_manifest("a")[0])
    assert json.loads(store.fetch_manifest("b")[0])["annotations"] == {
        "org.opencontainers.image.created": "2026-01-01T00:00:00Z",
        "org.opencontainers.image.source": "https://example.com/rules",
    }


def test_a_corrupted_cache_entry_is_downloaded_again(registry, tmp_path: Path) -> None:
    options = ClientOptions(plain_http=True, cache_dir=tmp_path / "cache")
    ref = parse_reference(f"{registry.host}/cache/corrupt:1.0.0")
    push_artifact(
        open_store(ref, options),
        PushSpec(artifact_type="rulesfile", files=[_rules_file(tmp_path)], version="1.0.0"),
    )
    first = pull_artifact(open_store(ref, options), tmp_path / "a")
    layer_digest = digest_file(first.files[0])[0]
    cached = tmp_path / "cache" / "blobs" / "sha256" / layer_digest.split(":")[1]
    cached.write_bytes(b"X" * cached.stat().st_size)
    again = pull_artifact(open_store(ref, options), tmp_path / "b")
    assert again.downloaded_blobs == 1
    assert digest_file(again.files[0])[0] == layer_digest
    assert digest_file(cached)[0] == layer_digest


def test_layout_push_refuses_a_non_empty_foreign_directory(tmp_path: Path) -> None:
    from registry.errors import RegistryError

    foreign = tmp_path / "etc-falco"
    foreign.mkdir()
    (foreign / "falco.yaml").write_text("keep: me\n")
    with pytest.raises(RegistryError, match="not an OCI image layout and is not empty"):
        push_artifact(
            open_store(parse_reference(f"oci-layout:{foreign}:1.0.0")),
            PushSpec(artifact_type="rulesfile", files=[_rules_file(tmp_path)], version="1.0.0"),
        )
    assert sorted(p.name for p in foreign.iterdir()) == ["falco.yaml"]


def test_a_layer_title_that_escapes_the_output_dir_is_refused(tmp_path: Path) -> None:
    from registry.artifacts import config_media_type, go_json, layer_media_type
    from registry.digests import digest_bytes
    from registry.errors import RegistryError
    from registry.store import OCI_MANIFEST, Descriptor
    from registry.tarball import targz_bytes

    store = open_store(parse_reference(f"oci-layout:{tmp_path / 'evil'}"))
    config = b'{"name":"evil","version":"1.0.0"}'
    layer = targz_bytes({"x.yaml": b"x: 1\n"})
    config_desc = Descriptor(config_media_type("rulesfile"), digest_bytes(config), len(config))
    layer_desc = Descriptor(
        layer_media_type("rulesfile"),
        digest_bytes(layer),
        len(layer),
        annotations={"org.opencontainers.image.title": "../../evil.tar.gz"},
    )
    store.push_blob(config, config_desc)
    store.push_blob(layer, layer_desc)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc.to_json(),
        "layers": [layer_desc.to_json()],
    }
    store.push_manifest(go_json(manifest), OCI_MANIFEST, "1.0.0")
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(RegistryError, match="not a plain file name"):
        pull_artifact(open_store(parse_reference(f"oci-layout:{tmp_path / 'evil'}:1.0.0")), out)
    assert not (tmp_path / "a" / "evil.tar.gz").exists()


def test_tag_listing_follows_pagination(
    registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import registry.remote as remote
    from registry.tags import sort_tags

    ref = parse_reference(f"{registry.host}/paged/rules:1.0.0")
    store = open_store(ref, ClientOptions(plain_http=True))
    push_artifact(
        store,
        PushSpec(
            artifact_type="rulesfile",
            files=[_rules_file(tmp_path)],
            version="1.0.0",
            tags=["1.0.0", "latest", "1.10.0", "1.9.0"],
            add_floating_tags=True,
        ),
    )
    monkeypatch.setattr(remote, "TAG_PAGE_SIZE", 2)
    tags = open_store(ref, ClientOptions(plain_http=True)).list_tags()
    assert sorted(tags) == sorted(["1.0.0", "latest", "1.10.0", "1.9.0", "1", "1.0"])
    assert sort_tags(tags) == ["1.0.0", "1.9.0", "1.10.0", "1", "1.0", "latest"]
