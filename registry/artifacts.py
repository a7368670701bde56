"""Falco artifacts in falcoctl's wire format: config JSON, one tar.gz layer, OCI manifests.

Rulesfiles and assets are one OCI image manifest; plugins are an OCI image index with one
manifest per platform (always an index, even for one platform, as falcoctl pushes them).
"""

from __future__ import annotations

import json
import logging
import platform as host_platform
import re
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from registry.digests import digest_bytes, digest_file
from registry.errors import NotFoundError, ReferenceError_, RegistryError
from registry.progress import Progress
from registry.store import OCI_INDEX, OCI_MANIFEST, ArtifactStore, Descriptor, parse_manifest
from registry.tags import floating_tags

log = logging.getLogger(__name__)

ARTIFACT_TYPES = ("rulesfile", "plugin", "asset")
TITLE = "org.opencontainers.image.title"
SOURCE = "org.opencontainers.image.source"
MAX_CONFIG_SIZE = 1 << 20
DEFAULT_TAG = "latest"

# falcoctl's strict semver (pkg/artifact/artifact.go): no leading v, no build metadata.
_SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?$"
)
_DEP_NAME_RE = re.compile(r"^[a-z]+[a-z0-9-_]*$")
_PLATFORM_RE = re.compile(r"^[a-z]+/[a-z0-9_]+$")


def config_media_type(artifact_type: str) -> str:
    return f"application/vnd.cncf.falco.{artifact_type}.config.v1+json"


def layer_media_type(artifact_type: str) -> str:
    return f"application/vnd.cncf.falco.{artifact_type}.layer.v1+tar.gz"


def artifact_type_of_layer(media_type: str) -> str | None:
    for kind in ARTIFACT_TYPES:
        if media_type == layer_media_type(kind):
            return kind
    return None


# -- config JSON -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    name: str
    version: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


@dataclass(frozen=True)
class Dependency:
    name: str
    version: str
    alternatives: tuple[Requirement, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "version": self.version}
        if self.alternatives:
            data["alternatives"] = [a.to_json() for a in sorted_by_name(self.alternatives)]
        return data


T = TypeVar("T", Requirement, Dependency)


def sorted_by_name(items: Iterable[T]) -> list[T]:
    """Upsert by name (last wins) and sort by name, as falcoctl's Set* helpers keep them."""
    by_name: dict[str, T] = {}
    for item in items:
        by_name[item.name] = item
    return [by_name[name] for name in sorted(by_name)]


@dataclass(frozen=True)
class ArtifactConfig:
    name: str = ""
    version: str = ""
    dependencies: tuple[Dependency, ...] = ()
    requirements: tuple[Requirement, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.name:
            data["name"] = self.name
        if self.version:
            data["version"] = self.version
        if self.dependencies:
            data["dependencies"] = [d.to_json() for d in sorted_by_name(self.dependencies)]
        if self.requirements:
            data["requirements"] = [r.to_json() for r in sorted_by_name(self.requirements)]
        return data

    def to_bytes(self) -> bytes:
        return go_json(self.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ArtifactConfig:
        def requirement(raw: dict[str, Any]) -> Requirement:
            return Requirement(str(raw.get("name", "")), str(raw.get("version", "")))

        return cls(
            name=str(data.get("name") or ""),
            version=str(data.get("version") or ""),
            dependencies=tuple(
                Dependency(
                    str(d.get("name", "")),
                    str(d.get("version", "")),
                    tuple(requirement(a) for a in d.get("alternatives") or ()),
                )
                for d in data.get("dependencies") or ()
            ),
            requirements=tuple(requirement(r) for r in data.get("requirements") or ()),
        )

    @classmethod
    def from_bytes(cls, data: bytes, what: str = "artifact config") -> ArtifactConfig:
        return cls.from_json(parse_manifest(data, what))


def go_json(value: Any) -> bytes:
    """JSON as Go's encoding/json writes it: compact, UTF-8, HTML characters escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


def check_version(version: str) -> str:
    if not _SEMVER_RE.match(version):
        raise ReferenceError_(
            f"version {version!r} is not a strict semver X.Y.Z[-pre]",
            hint="falcoctl's rule: no leading 'v', no build metadata, all three numbers",
        )
    return version


def _name_version(text: str, what: str) -> Requirement:
    name, sep, version = text.partition(":")
    if not sep or not _DEP_NAME_RE.match(name):
        raise ReferenceError_(
            f"invalid {what} {text!r}", hint="use name:version, e.g. k8saudit:0.7.0"
        )
    return Requirement(name, check_version(version))


def parse_dependency(text: str) -> Dependency:
    """`name:ver|alt:ver|...`: the first is the dependency, the rest its alternatives."""
    first, *alternatives = (part.strip() for part in text.split("|"))
    head = _name_version(first, "dependency")
    return Dependency(
        head.name, head.version, tuple(_name_version(a, "alternative") for a in alternatives)
    )


def parse_requirement(text: str) -> Requirement:
    name, sep, version = text.partition(":")
    if not sep or not name or not version:
        raise ReferenceError_(
            f"invalid requirement {text!r}",
            hint="use name:version, e.g. engine_version_semver:0.26.0",
        )
    return Requirement(name, version)


# Short keys for the common OCI annotations (`--annotation created=...`).
ANNOTATION_ALIASES = {
    "created": "org.opencontainers.image.created",
    "source": SOURCE,
    "revision": "org.opencontainers.image.revision",
    "description": "org.opencontainers.image.description",
    "licenses": "org.opencontainers.image.licenses",
}


def parse_annotations(items: Iterable[str]) -> dict[str, str]:
    annotations: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ReferenceError_(
                f"invalid annotation {item!r}",
                hint="use KEY=VALUE, e.g. created=2026-01-01T00:00:00Z",
            )
        annotations[ANNOTATION_ALIASES.get(key.strip(), key.strip())] = value
    return annotations


def rulesfile_metadata(path: Path) -> tuple[tuple[Dependency, ...], tuple[Requirement, ...]]:
    """Dependencies and requirements declared by a rules YAML, as falcoctl's push reads them."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        document = yaml.load(path.read_text(), Loader=loader)
    except (OSError, yaml.YAMLError) as error:
        raise RegistryError(f"cannot read rules file {path}: {error}") from error
    dependencies: list[Dependency] = []
    requirements: list[Requirement] = []
    for item in document if isinstance(document, list) else ():
        if not isinstance(item, dict):
            continue
        if "required_engine_version" in item:
            requirements.append(
                Requirement(
                    "engine_version_semver", _engine_semver(item["required_engine_version"])
                )
            )
        for plugin in item.get("required_plugin_versions") or ():
            dependencies.append(
                Dependency(
                    str(plugin["name"]),
                    str(plugin["version"]),
                    tuple(
                        Requirement(str(a["name"]), str(a["version"]))
                        for a in plugin.get("alternatives") or ()
                    ),
                )
            )
    return tuple(sorted_by_name(dependencies)), tuple(sorted_by_name(requirements))


def _engine_semver(value: Any) -> str:
    if isinstance(value, int):
        return f"0.{value}.0"
    text = str(value).strip()
    if text.isdigit():
        return f"0.{int(text)}.0"
    return check_version(text)


# -- platforms -------------------------------------------------------------------------------


def host_platform_string() -> str:
    machine = host_platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )
    return f"{sys.platform if sys.platform != 'linux2' else 'linux'}/{arch}"


def parse_platform(text: str) -> dict[str, str]:
    if not _PLATFORM_RE.match(text):
        raise ReferenceError_(
            f"invalid platform {text!r}", hint="use os/arch, e.g. linux/amd64 or linux/arm64"
        )
    os_name, arch = text.split("/")
    # Field order as image-spec's Platform struct serialises it.
    return {"architecture": arch, "os": os_name}


def platform_string(platform: dict[str, str] | None) -> str:
    if not platform:
        return ""
    return f"{platform.get('os', '')}/{platform.get('architecture', '')}"


# -- push ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushedLayer:
    title: str
    digest: str
    size: int
    platform: str = ""


@dataclass(frozen=True)
class PushResult:
    reference: str
    digest: str
    media_type: str
    artifact_type: str
    tags: tuple[str, ...]
    config: ArtifactConfig
    layers: tuple[PushedLayer, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "mediaType": self.media_type,
            "type": self.artifact_type,
            "tags": list(self.tags),
            "config": self.config.to_json(),
            "layers": [layer.__dict__ for layer in self.layers],
        }


@dataclass
class PushSpec:
    """What `registry push` was asked to publish."""

    artifact_type: str
    files: Sequence[Path]
    version: str
    name: str | None = None
    platforms: Sequence[str] = ()
    dependencies: Sequence[Dependency] | None = None
    requirements: Sequence[Requirement] | None = None
    tags: Sequence[str] = ()
    add_floating_tags: bool = False
    annotation_source: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)


def _validate_spec(spec: PushSpec) -> None:
    if spec.artifact_type not in ARTIFACT_TYPES:
        raise ReferenceError_(
            f"unknown artifact type {spec.artifact_type!r}", hint="use rulesfile, plugin or asset"
        )
    check_version(spec.version)
    if not spec.files:
        raise ReferenceError_("no file to push")
    for path in spec.files:
        if not path.exists():
            raise ReferenceError_(f"{path} does not exist")
    if spec.artifact_type == "plugin":
        if len(spec.platforms) != len(spec.files):
            raise ReferenceError_(
                f"{len(spec.files)} file(s) but {len(spec.platforms)} --platform value(s)",
                hint="plugins need one --platform os/arch per file, in file order",
            )
        for text in spec.platforms:
            parse_platform(text)
        if len(set(spec.platforms)) != len(spec.platforms):
            raise ReferenceError_("the same --platform is given twice")
    elif len(spec.files) != 1:
        raise ReferenceError_(
            f"a {spec.artifact_type} artifact holds exactly one file, got {len(spec.files)}"
        )
    elif spec.platforms:
        raise ReferenceError_("--platform applies to plugins only")


def build_config(spec: PushSpec, default_name: str) -> ArtifactConfig:
    dependencies = tuple(spec.dependencies or ())
    requirements = tuple(spec.requirements or ())
    source = spec.files[0]
    if (
        spec.artifact_type == "rulesfile"
        and spec.dependencies is None
        and spec.requirements is None
        and source.is_file()
        and not _is_gzip(source)
    ):
        dependencies, requirements = rulesfile_metadata(source)
    return ArtifactConfig(
        name=spec.name or default_name,
        version=spec.version,
        dependencies=dependencies,
        requirements=requirements,
    )


def _is_gzip(path: Path) -> bool:
    from registry.tarball import is_gzip

    return is_gzip(path)


def _layer_file(source: Path, work_dir: Path) -> tuple[Path, str]:
    """The tar.gz to upload and its title: the file itself if already gzipped, else packed."""
    from registry.tarball import archive_name, write_reproducible_targz

    if source.is_file() and _is_gzip(source):
        return source, source.name
    title = archive_name(source)
    packed = work_dir / f"{len(list(work_dir.iterdir()))}-{title}"
    write_reproducible_targz(source, packed)
    return packed, title


def _image_manifest(config: Descriptor, layer: Descriptor, annotations: dict[str, str]) -> bytes:
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json()],
    }
    if annotations:
        manifest["annotations"] = dict(sorted(annotations.items()))
    return go_json(manifest)


def push_artifact(
    store: ArtifactStore, spec: PushSpec, progress: Progress | None = None
) -> PushResult:
    """Upload blobs, then manifest(s), then tags: a reader never sees a tag before its content."""
    _validate_spec(spec)
    reference = store.reference
    if reference.digest:
        raise ReferenceError_(
            f"cannot push to a digest reference ({reference})", hint="push to a tag"
        )
    main_tag = reference.tag or (spec.tags[0] if spec.tags else DEFAULT_TAG)
    config = build_config(spec, reference.name)
    config_bytes = config.to_bytes()
    # No annotations on the config descriptor: ECR rejects them (falcoctl#302).
    config_descriptor = Descriptor(
        config_media_type(spec.artifact_type), digest_bytes(config_bytes), len(config_bytes)
    )
    annotations = dict(spec.annotations)
    if spec.annotation_source:
        annotations[SOURCE] = spec.annotation_source
    store.push_blob(config_bytes, config_descriptor)

    pushed_layers: list[PushedLayer] = []
    manifests: list[Descriptor] = []
    with tempfile.TemporaryDirectory(prefix="falconet-push-") as tmp:
        for index, source in enumerate(spec.files):
            layer_path, title = _layer_file(source, Path(tmp))
            digest, size = digest_file(layer_path)
            layer = Descriptor(
                layer_media_type(spec.artifact_type), digest, size, annotations={TITLE: title}
            )
            store.push_blob(layer_path, layer, progress)
            platform = spec.platforms[index] if spec.artifact_type == "plugin" else ""
            pushed_layers.append(PushedLayer(title, digest, size, platform))
            manifest_bytes = _image_manifest(config_descriptor, layer, annotations)
            if spec.artifact_type == "plugin":
                child = store.push_manifest(manifest_bytes, OCI_MANIFEST)
                manifests.append(
                    Descriptor(
                        child.media_type, child.digest, child.size, None, parse_platform(platform)
                    )
                )
            else:
                root = store.push_manifest(manifest_bytes, OCI_MANIFEST, main_tag)
    if spec.artifact_type == "plugin":
        index_doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [m.to_json() for m in manifests],
        }
        if annotations:
            index_doc["annotations"] = dict(sorted(annotations.items()))
        root = store.push_manifest(go_json(index_doc), OCI_INDEX, main_tag)

    extra = [t for t in spec.tags if t != main_tag]
    if spec.add_floating_tags:
        extra += [t for t in floating_tags(spec.version) if t != main_tag and t not in extra]
    for tag in extra:
        store.tag(root, tag)
    return PushResult(
        reference=str(reference.with_tag(main_tag)),
        digest=root.digest,
        media_type=root.media_type,
        artifact_type=spec.artifact_type,
        tags=(main_tag, *extra),
        config=config,
        layers=tuple(pushed_layers),
    )


# -- pull ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedArtifact:
    """The image manifest an artifact reference designates (platform chosen for indexes)."""

    root: Descriptor
    manifest: Descriptor
    manifest_bytes: bytes
    manifest_json: dict[str, Any]
    artifact_type: str
    platform: str

    @property
    def config_descriptor(self) -> Descriptor:
        return Descriptor.from_json(self.manifest_json["config"])

    @property
    def layers(self) -> list[Descriptor]:
        return [Descriptor.from_json(layer) for layer in self.manifest_json.get("layers") or ()]


def select_platform(index: dict[str, Any], wanted: str, what: str) -> Descriptor:
    """The index entry whose os/architecture match exactly (falcoctl does no variant matching)."""
    available: list[str] = []
    for raw in index.get("manifests") or ():
        entry = Descriptor.from_json(raw)
        text = platform_string(entry.platform)
        available.append(text or "(no platform)")
        if text == wanted:
            return entry
    raise NotFoundError(
        f"{what} has no manifest for platform {wanted}",
        hint=f"available: {', '.join(available) or 'none'}; pass --platform",
    )


def resolve_artifact(
    store: ArtifactStore, target: str | None = None, platform: str | None = None
) -> ResolvedArtifact:
    target = target or store.reference.target or DEFAULT_TAG
    what = f"{store.reference.locator} ({target})"
    data, root = store.fetch_manifest(target)
    document = parse_manifest(data, f"manifest of {what}")
    chosen = ""
    manifest = root
    if root.is_index or "manifests" in document:
        chosen = platform or host_platform_string()
        entry = select_platform(document, chosen, what)
        data, manifest = store.fetch_manifest(entry.digest)
        document = parse_manifest(data, f"manifest of {what} for {chosen}")
    layers = document.get("layers") or []
    if not layers or "config" not in document:
        raise RegistryError(f"{what} is not an image manifest with layers")
    kind = artifact_type_of_layer(str(layers[0].get("mediaType", "")))
    if kind is None:
        raise RegistryError(
            f"{what} is not a Falco artifact (layer media type {layers[0].get('mediaType')!r})",
            hint="falconet handles rulesfile, plugin and asset artifacts",
        )
    return ResolvedArtifact(root, manifest, data, document, kind, chosen)


def fetch_config(
    store: ArtifactStore, target: str | None = None, platform: str | None = None
) -> tuple[ArtifactConfig, bytes, ResolvedArtifact]:
    """The artifact's config (parsed and raw bytes, digest verified) and what it came from."""
    resolved = resolve_artifact(store, target, platform)
    raw = store.fetch_blob_bytes(resolved.config_descriptor, MAX_CONFIG_SIZE)
    return ArtifactConfig.from_bytes(raw), raw, resolved


@dataclass(frozen=True)
class PullResult:
    reference: str
    digest: str
    manifest_digest: str
    artifact_type: str
    platform: str
    config: ArtifactConfig
    files: tuple[Path, ...]
    downloaded_blobs: int

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "manifestDigest": self.manifest_digest,
            "type": self.artifact_type,
            "platform": self.platform,
            "config": self.config.to_json(),
            "files": [str(f) for f in self.files],
            "downloadedBlobs": self.downloaded_blobs,
        }


def safe_title(descriptor: Descriptor, what: str) -> str:
    title = descriptor.title or f"{descriptor.digest.split(':', 1)[1][:12]}.tar.gz"
    if "/" in title or "\\" in title or title in (".", "..") or title.startswith("."):
        raise RegistryError(
            f"{what}: layer title {title!r} is not a plain file name",
            hint="the artifact was built to escape the output directory; refusing it",
        )
    return title


def pull_artifact(
    store: ArtifactStore,
    dest_dir: Path,
    target: str | None = None,
    platform: str | None = None,
    progress: Progress | None = None,
) -> PullResult:
    """Write the artifact's layer tarball(s), named by title, into dest_dir (no extraction)."""
    config, _, resolved = fetch_config(store, target, platform)
    what = str(store.reference)
    titles = [safe_title(layer, what) for layer in resolved.layers]
    dest_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    downloaded = 0
    for layer, title in zip(resolved.layers, titles, strict=True):
        dest = dest_dir / title
        if store.fetch_blob(layer, dest, progress):
            downloaded += 1
        files.append(dest)
    return PullResult(
        reference=str(store.reference),
        digest=resolved.root.digest,
        manifest_digest=resolved.manifest.digest,
        artifact_type=resolved.artifact_type,
        platform=resolved.platform,
        config=config,
        files=tuple(files),
        downloaded_blobs=downloaded,
    )
