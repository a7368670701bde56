"""Copy artifacts between any two stores (registry <-> registry <-> OCI layout): the air gap path.

Copies whole graphs (image indexes with every child, configs, layers) and the cosign
signature tags (`sha256-<hex>.sig`) of what it copies. Content goes in before the tags that
name it, so the destination never holds a tag whose content is missing; blobs the destination
already has are not transferred again.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.errors import NotFoundError
from registry.store import ArtifactStore, Descriptor, parse_manifest
from registry.tags import is_signature_tag, signature_tag

log = logging.getLogger(__name__)


@dataclass
class MirrorResult:
    source: str
    destination: str
    tags: list[tuple[str, str]] = field(default_factory=list)  # (tag, digest)
    signatures: list[str] = field(default_factory=list)
    blobs_copied: int = 0
    blobs_present: int = 0
    blobs_mounted: int = 0
    manifests_copied: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "destination": self.destination,
            "tags": [{"tag": t, "digest": d} for t, d in self.tags],
            "signatures": self.signatures,
            "blobsCopied": self.blobs_copied,
            "blobsPresent": self.blobs_present,
            "blobsMounted": self.blobs_mounted,
            "manifestsCopied": self.manifests_copied,
        }


class _GraphCopier:
    def __init__(self, src: ArtifactStore, dst: ArtifactStore, work: Path, result: MirrorResult):
        self.src, self.dst, self.work, self.result = src, dst, work, result
        self._done: set[str] = set()

    def copy(self, descriptor: Descriptor, tag: str | None) -> Descriptor:
        data, fetched = self.src.fetch_manifest(descriptor.digest)
        media_type = descriptor.media_type or fetched.media_type
        if descriptor.digest not in self._done:
            document = parse_manifest(data, f"manifest {descriptor.digest}")
            for child in document.get("manifests") or ():
                self.copy(Descriptor.from_json(child), None)
            for raw in [document.get("config"), *(document.get("layers") or ())]:
                if raw:
                    self._copy_blob(Descriptor.from_json(raw))
        pushed = self.dst.push_manifest(data, media_type, tag)
        if descriptor.digest not in self._done:
            self.result.manifests_copied += 1
            self._done.add(descriptor.digest)
        return pushed

    def _copy_blob(self, blob: Descriptor) -> None:
        if blob.digest in self._done or self.dst.blob_exists(blob):
            self.result.blobs_present += 1
            self._done.add(blob.digest)
            return
        if self._mount(blob):
            self.result.blobs_mounted += 1
            self._done.add(blob.digest)
            return
        staged = self.work / blob.digest.replace(":", "-")
        self.src.fetch_blob(blob, staged)
        try:
            self.dst.push_blob(staged, blob)
        finally:
            staged.unlink(missing_ok=True)
        self._done.add(blob.digest)
        self.result.blobs_copied += 1

    def _mount(self, blob: Descriptor) -> bool:
        """Same registry on both sides: ask it to mount the blob instead of moving bytes."""
        from registry.remote import RemoteRepository

        src, dst = self.src, self.dst
        if not (isinstance(src, RemoteRepository) and isinstance(dst, RemoteRepository)):
            return False
        if src.reference.registry != dst.reference.registry:
            return False
        return dst.mount_blob(blob, src.reference.repository)


def _tags_to_copy(src: ArtifactStore, tags: Sequence[str] | None) -> list[str]:
    if tags:
        return list(tags)
    if src.reference.tag and not src.reference.digest:
        return [src.reference.tag]
    return [t for t in src.list_tags() if not is_signature_tag(t)]


def mirror(
    src: ArtifactStore,
    dst: ArtifactStore,
    tags: Sequence[str] | None = None,
    include_signatures: bool = True,
) -> MirrorResult:
    """Copy tags (given, the source ref's, or all) with their graphs and signatures to dst."""
    result = MirrorResult(source=str(src.reference), destination=str(dst.reference))
    with tempfile.TemporaryDirectory(prefix="falconet-mirror-") as tmp:
        copier = _GraphCopier(src, dst, Path(tmp), result)
        if src.reference.digest and not tags:
            root = src.resolve(src.reference.digest)
            copier.copy(root, dst.reference.tag)
            roots = [root]
            if dst.reference.tag:
                result.tags.append((dst.reference.tag, root.digest))
        else:
            roots = []
            wanted = _tags_to_copy(src, tags)
            for tag in wanted:
                # One tag to a destination ref with its own tag: copy under that name.
                target = dst.reference.tag if len(wanted) == 1 and dst.reference.tag else tag
                root = src.resolve(tag)
                copier.copy(root, target)
                roots.append(root)
                result.tags.append((target, root.digest))
        if include_signatures:
            _copy_signatures(src, copier, roots, result)
    return result


def _copy_signatures(
    src: ArtifactStore, copier: _GraphCopier, roots: list[Descriptor], result: MirrorResult
) -> None:
    try:
        available = set(src.list_tags())
    except NotFoundError:
        return
    for root in {r.digest: r for r in roots}.values():
        tag = signature_tag(root.digest)
        if tag in available:
            copier.copy(src.resolve(tag), tag)
            result.signatures.append(tag)
