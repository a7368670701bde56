"""References, tag conventions and the config JSON's exact bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.artifacts import (
    ArtifactConfig,
    Dependency,
    Requirement,
    check_version,
    parse_dependency,
    rulesfile_metadata,
)
from registry.errors import ReferenceError_
from registry.reference import is_full_reference, parse_reference
from registry.tags import floating_tags, signature_tag, sort_tags

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("ghcr.io/falcosecurity/rules/falco-rules:3", "ghcr.io", "falcosecurity/rules/falco-rules",
         "3", None),
        ("127.0.0.1:5000/a/b", "127.0.0.1:5000", "a/b", None, None),
        (f"localhost/x@{DIGEST}", "localhost", "x", None, DIGEST),
        (f"reg.io:443/x/y:1.0.0@{DIGEST}", "reg.io:443", "x/y", "1.0.0", DIGEST),
    ],
)  # fmt: skip
def test_full_references(text, registry, repository, tag, digest) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )
    assert ref.target == (digest or tag)
    assert str(ref) == text
    assert parse_reference(str(ref)) == ref


def test_layout_references(tmp_path: Path) -> None:
    ref = parse_reference(f"oci-layout:{tmp_path}/feed:1.2.3")
    assert ref.layout == tmp_path / "feed"
    assert ref.tag == "1.2.3" and ref.is_layout
    pinned = parse_reference(f"oci-layout:{tmp_path}/feed@{DIGEST}")
    assert pinned.digest == DIGEST and pinned.tag is None
    assert parse_reference(f"oci-layout:{tmp_path}/feed").target is None


@pytest.mark.parametrize("name", ["falco-rules", "falco-rules:3", f"k8saudit@{DIGEST}"])
def test_index_names_are_not_full_references(name: str) -> None:
    assert not is_full_reference(name)
    with pytest.raises(ReferenceError_, match="not a full reference"):
        parse_reference(name)


@pytest.mark.parametrize(
    "bad", ["ghcr.io/Upper/case:1", "ghcr.io/a/b:bad tag", "ghcr.io/a@sha256:short", "ghcr.io/"]
)
def test_invalid_references_are_usage_errors(bad: str) -> None:
    with pytest.raises(ReferenceError_) as info:
        parse_reference(bad)
    assert info.value.exit_status == "usage"


@given(
    repo=st.from_regex(r"[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}", fullmatch=True),
    tag=st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,20}", fullmatch=True),
)
def test_reference_round_trips(repo: str, tag: str) -> None:
    ref = parse_reference(f"reg.example:5000/{repo}:{tag}")
    assert (ref.repository, ref.tag) == (repo, tag)
    assert parse_reference(str(ref)) == ref


def test_config_json_is_falcoctls_bytes() -> None:
    config = ArtifactConfig(
        name="k8saudit-rules",
        version="0.7.0",
        dependencies=(
            Dependency("k8saudit", "0.7.0", (Requirement("k8saudit-eks", "0.4.0"),)),
            Dependency("json", "0.7.0"),
        ),
        requirements=(Requirement("engine_version_semver", "0.26.0"),),
    )
    assert config.to_bytes() == (
        b'{"name":"k8saudit-rules","version":"0.7.0","dependencies":['
        b'{"name":"json","version":"0.7.0"},'
        b'{"name":"k8saudit","version":"0.7.0","alternatives":'
        b'[{"name":"k8saudit-eks","version":"0.4.0"}]}],'
        b'"requirements":[{"name":"engine_version_semver","version":"0.26.0"}]}'
    )
    assert ArtifactConfig(name="x", version="1.0.0").to_bytes() == (
        b'{"name":"x","version":"1.0.0"}'
    )
    assert ArtifactConfig.from_bytes(config.to_bytes()).to_bytes() == config.to_bytes()


def test_depends_on_spelling() -> None:
    dep = parse_dependency("k8saudit:0.7.0|k8saudit-eks:0.4.0")
    assert dep.name == "k8saudit" and dep.alternatives == (Requirement("k8saudit-eks", "0.4.0"),)
    with pytest.raises(ReferenceError_):
        parse_dependency("K8S:1.0.0")
    with pytest.raises(ReferenceError_):
        parse_dependency("k8saudit:latest")


@pytest.mark.parametrize("bad", ["v1.0.0", "1.0", "1", "1.0.0+build", "01.0.0"])
def test_versions_are_strict_semver(bad: str) -> None:
    with pytest.raises(ReferenceError_):
        check_version(bad)
    assert check_version("1.0.0-rc.1") == "1.0.0-rc.1"


def test_engine_version_forms(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text("- required_engine_version: 0.31.0\n")
    assert rulesfile_metadata(rules)[1] == (Requirement("engine_version_semver", "0.31.0"),)
    rules.write_text("- required_engine_version: 15\n")
    assert rulesfile_metadata(rules)[1] == (Requirement("engine_version_semver", "0.15.0"),)


def test_upstream_rules_metadata(shared_dir: Path) -> None:
    rules = shared_dir / "upstream-rules"
    files = sorted(rules.rglob("*.yaml"))
    if not files:
        pytest.skip(f"no rules files under {rules}")
    for path in files:
        deps, reqs = rulesfile_metadata(path)
        assert all(r.name == "engine_version_semver" for r in reqs)
        assert all(check_version(r.version) for r in reqs)
        assert all(d.name and d.version for d in deps)


def test_tags() -> None:
    assert floating_tags("5.1.0") == ["5.1.0", "5", "5.1"]
    sig = signature_tag(DIGEST)
    assert sig == "sha256-" + "ab" * 32 + ".sig"
    tags = ["latest", "1.10.0", "1.2.0", sig, "1", "1.2.0-rc.1", "0.9.9"]
    assert sort_tags(tags) == ["0.9.9", "1.2.0-rc.1", "1.2.0", "1.10.0", "1", "latest"]


def test_malformed_plugin_requirement_is_a_clear_error(tmp_path: Path) -> None:
    from registry.errors import RegistryError

    rules = tmp_path / "r.yaml"
    rules.write_text("- required_plugin_versions:\n  - version: 1.0.0\n")
    with pytest.raises(RegistryError, match="malformed required_plugin_versions"):
        rulesfile_metadata(rules)
