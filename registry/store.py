"""Where artifacts live: a repository in a remote registry or an OCI image layout directory.

Both implement `ArtifactStore`, so push, pull, mirror and install code never cares which one
it talks to. Everything fetched is verified against its digest before it is returned or
written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from registry.errors import RegistryError
from registry.options import ClientOptions
from registry.progress import Progress
from registry.reference import Reference

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
INDEX_MEDIA_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
# Manifests are small; anything bigger is refused before it is read into memory.
MAX_MANIFEST_SIZE = 4 << 20

__all__ = [
    "INDEX_MEDIA_TYPES",
    "MANIFEST_MEDIA_TYPES",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "ArtifactStore",
    "ClientOptions",
    "Descriptor",
    "LocalBlob",
    "open_store",
]


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] | None = None
    platform: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        """Field order as oras-go/image-spec serialise a descriptor (stable manifest bytes)."""
        data: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        if self.platform:
            data["platform"] = dict(self.platform)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Descriptor:
        try:
            return cls(
                media_type=str(data.get("mediaType", "")),
                digest=str(data["digest"]),
                size=int(data["size"]),
                annotations=dict(data["annotations"]) if data.get("annotations") else None,
                platform=dict(data["platform"]) if data.get("platform") else None,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise RegistryError(f"malformed descriptor {data!r}") from error

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES

    @property
    def title(self) -> str | None:
        return (self.annotations or {}).get("org.opencontainers.image.title")


def parse_manifest(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as error:
        raise RegistryError(f"{what} is not valid JSON: {error}") from error
    if not isinstance(value, dict):
        raise RegistryError(f"{what} is not a JSON object")
    return value


def manifest_media_type(data: bytes, fallback: str) -> str:
    """A manifest's own mediaType field (layouts and untagged children have no other record)."""
    try:
        value = json.loads(data)
    except ValueError:
        return fallback
    if isinstance(value, dict) and isinstance(value.get("mediaType"), str):
        return value["mediaType"]
    if isinstance(value, dict) and "manifests" in value:
        return OCI_INDEX
    return fallback


@dataclass(frozen=True)
class LocalBlob:
    """A blob as a local file, for reading in place (no copy).

    `verified`: its content was hashed against the digest in this process (just downloaded);
    otherwise (a cache hit, a layout's file) the reader must verify it as it reads.
    `disposable`: a cache copy, which may be deleted when it turns out corrupt (never true
    for a layout's own files)."""

    path: Path
    verified: bool
    downloaded: bool
    disposable: bool


class ArtifactStore(Protocol):
    reference: Reference

    def resolve(self, tag_or_digest: str) -> Descriptor: ...

    def fetch_manifest(self, tag_or_digest: str) -> tuple[bytes, Descriptor]: ...

    def fetch_blob(
        self, descriptor: Descriptor, dest_path: Path, progress: Progress | None = None
    ) -> bool: ...

    def fetch_blob_bytes(self, descriptor: Descriptor, max_size: int) -> bytes: ...

    def local_blob(
        self, descriptor: Descriptor, scratch: Path, progress: Progress | None = None
    ) -> LocalBlob: ...

    def blob_exists(self, descriptor: Descriptor) -> bool: ...

    def push_blob(
        self, source: Path | bytes, descriptor: Descriptor, progress: Progress | None = None
    ) -> None: ...

    def push_manifest(self, data: bytes, media_type: str, tag: str | None = None) -> Descriptor: ...

    def tag(self, descriptor: Descriptor, tag: str) -> None: ...

    def list_tags(self) -> list[str]: ...


def open_store(reference: Reference, options: ClientOptions | None = None) -> ArtifactStore:
    """The store a reference names: its registry repository, or its OCI layout directory."""
    options = options or ClientOptions()
    if reference.layout is not None:
        from registry.layout import LayoutStore

        return LayoutStore(reference, options)
    from registry.remote import RemoteRepository

    return RemoteRepository(reference, options)
