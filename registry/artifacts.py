"""Falco artifacts in falcoctl's wire format: config JSON, one tar.gz layer, OCI manifests.

Rulesfiles and assets are one OCI image manifest; plugins are an OCI image index with one
manifest per platform (always an index, even for one platform, as falcoctl pushes them).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.artifact_config import (
    SOURCE,
    ArtifactConfig,
    Dependency,
    Requirement,
    check_version,
    go_json,
    parse_annotations,
    parse_dependency,
    parse_requirement,
    rulesfile_metadata,
)
from registry.digests import digest_bytes, digest_file
from registry.errors import ReferenceError_, RegistryError
from registry.platforms import (
    host_platform_string,
    parse_platform,
    platform_string,
    select_platform,
)
from registry.progress import Progress
from registry.store import OCI_INDEX, OCI_MANIFEST, ArtifactStore, Descriptor, parse_manifest

if TYPE_CHECKING:
    from registry.extract import ExtractedFile
from registry.tags import floating_tags

log = logging.getLogger(__name__)

# Re-exported: callers import the whole artifact API from here.
__all__ = [
    "ArtifactConfig",
    "Dependency",
    "PullResult",
    "PushResult",
    "PushSpec",
    "Requirement",
    "ResolvedArtifact",
    "check_version",
    "extract_artifact",
    "fetch_config",
    "go_json",
    "host_platform_string",
    "parse_annotations",
    "parse_dependency",
    "parse_platform",
    "parse_requirement",
    "platform_string",
    "pull_artifact",
    "push_artifact",
    "resolve_artifact",
    "rulesfile_metadata",
    "select_platform",
]

ARTIFACT_TYPES = ("rulesfile", "plugin", "asset")
TITLE = "org.opencontainers.image.title"
MAX_CONFIG_SIZE = 1 << 20
DEFAULT_TAG = "latest"


def config_media_type(artifact_type: str) -> str:
    return f"application/vnd.cncf.falco.{artifact_type}.config.v1+json"


def layer_media_type(artifact_type: str) -> str:
    return f"application/vnd.cncf.falco.{artifact_type}.layer.v1+tar.gz"


def artifact_type_of_layer(media_type: str) -> str | None:
    for kind in ARTIFACT_TYPES:
        if media_type == layer_media_type(kind):
            return kind
    return None


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
        if not os.access(path, os.R_OK):
            raise ReferenceError_(f"{path} is not readable", hint="check its permissions")
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
                root_bytes = manifest_bytes
                root = store.push_manifest(root_bytes, OCI_MANIFEST, main_tag)
    if spec.artifact_type == "plugin":
        index_doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [m.to_json() for m in manifests],
        }
        if annotations:
            index_doc["annotations"] = dict(sorted(annotations.items()))
        root_bytes = go_json(index_doc)
        root = store.push_manifest(root_bytes, OCI_INDEX, main_tag)

    extra = [t for t in spec.tags if t != main_tag]
    if spec.add_floating_tags:
        extra += [t for t in floating_tags(spec.version) if t != main_tag and t not in extra]
    for tag in extra:
        # The bytes are at hand: PUT them under each tag rather than fetching them back.
        store.push_manifest(root_bytes, root.media_type, tag)
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
        chosen = platform_string(parse_platform(platform)) if platform else host_platform_string()
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
    files: list[Path] = []
    downloaded = 0
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        for layer, title in zip(resolved.layers, titles, strict=True):
            dest = dest_dir / title
            if store.fetch_blob(layer, dest, progress):
                downloaded += 1
            files.append(dest)
    except OSError as error:
        raise RegistryError(
            f"cannot write to {dest_dir}: {error.strerror or error}",
            hint="choose a writable directory with -o/--dest-dir",
        ) from error
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


@dataclass(frozen=True)
class ExtractResult:
    files: list[ExtractedFile]  # relative to the destination, with their sha256
    downloaded_blobs: int


def extract_artifact(
    store: ArtifactStore,
    resolved: ResolvedArtifact,
    dest: Path,
    scratch: Path,
    progress: Progress | None = None,
    durable: bool = False,
) -> ExtractResult:
    """Extract every layer (tar.gz) of a resolved artifact into dest, each blob read in place
    from the cache (verified while it is inflated) or downloaded into it (verified on the way):
    the layer is never copied first. A corrupt cache copy is fetched again. durable: files and
    directories are fsynced (see registry.extract)."""
    from registry.errors import DigestMismatchError
    from registry.extract import extract_layer

    files: list[ExtractedFile] = []
    downloaded = 0
    for layer in resolved.layers:
        blob = store.local_blob(layer, scratch, progress)
        try:
            extracted = extract_layer(
                blob.path, dest, None if blob.verified else layer.digest, durable
            )
        except DigestMismatchError:
            if not blob.disposable:
                raise
            log.warning("blob %s: cached copy is corrupt; downloading it again", layer.digest)
            blob.path.unlink(missing_ok=True)
            blob = store.local_blob(layer, scratch, progress)
            extracted = extract_layer(blob.path, dest, None, durable)
        downloaded += blob.downloaded
        files += extracted
    return ExtractResult(files, downloaded)
